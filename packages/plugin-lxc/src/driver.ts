// lxc:///system: LXC system containers driven with the lxc-* tools. The driver does no I/O of
// its own: it writes the container's LXC config (file-write effect, atomic) under its runtime
// dir, which is the containers' lxcpath, and runs lxc-start/-stop/-info/-freeze/... with -P
// and -n; the host performs each effect under the plugin's grant. Containers are
// daemonized by lxc-start -d and outlive the manager; a watched `lxc-wait -s STOPPED` per
// container turns a container stopping by itself into an event; a new manager re-attaches
// from the runtime record.
import { defineDriver, fx, log, decodeUtf8, decodeBase64, execArgs, execResult, DriverError, type EffectGen, type OperationContext, type OperationResult, type LifecycleEvent, type DomainStatus, type NodeInfo } from '@virtkit/driver-sdk/guest';
import { buildConfig, containerPaths, ConfigError, type CgroupHost, type ContainerPaths, type DomainConfig } from './config.js';

interface Runtime {
  paths: ContainerPaths;
  /** LXC's monitor process ([lxc monitor], running lxc-start): it lives as long as the container. */
  monitor: number;
  /** When the monitor started (clock ticks since boot): tells it from a process that reused its pid. */
  monitorTicks: number;
  cgroup: 1 | 2;
  /** Written by versions that kept the watcher in the shared record; ignored now. */
  watcher?: number;
}

type Ctx = OperationContext<DomainConfig, Runtime>;

const BIN = '/usr/bin';
const tool = (name: string) => `${BIN}/lxc-${name}`;
const SOCAT = '/usr/bin/socat';
const SETPRIV = '/usr/bin/setpriv';
const CGROUP = '/sys/fs/cgroup';
const TOOL_TIMEOUT = 30_000;

const ev = (ctx: Ctx, kind: LifecycleEvent['kind'], reason: LifecycleEvent['reason']): LifecycleEvent => ({ domain: ctx.domain!, kind, reason });
const target = (p: ContainerPaths) => ['-n', p.name, '-P', p.lxcpath];

function* exists(path: string): EffectGen<boolean> {
  try {
    return (yield* fx.stat(path)) !== undefined;
  } catch (e) {
    if (e instanceof DriverError && (e.code === 'grant-denied' || e.code === 'not-found')) return false;
    throw e;
  }
}

/** Which cgroup hierarchy the host has, looked up once per driver instance. */
let cgroupHost: CgroupHost | undefined;

function* detectCgroups(fresh = false): EffectGen<CgroupHost> {
  if (fresh) cgroupHost = undefined;
  if (cgroupHost) return cgroupHost;
  if (yield* exists(`${CGROUP}/memory/memory.limit_in_bytes`)) {
    cgroupHost = { version: 1, memsw: yield* exists(`${CGROUP}/memory/memory.memsw.limit_in_bytes`) };
  } else if (yield* exists(`${CGROUP}/cgroup.controllers`)) {
    cgroupHost = { version: 2, memsw: false };
  } else {
    throw new DriverError('driver-failed', `no memory cgroup controller under ${CGROUP} (neither v1 memory/ nor a v2 hierarchy): limits cannot be enforced`);
  }
  return cgroupHost;
}

function* tail(path: string, lines = 6): EffectGen<string> {
  try {
    return (yield* fx.readText(path, 65536)).trim().split('\n').slice(-lines).join(' | ') || '(empty log)';
  } catch {
    return '(no log)';
  }
}

/** Runs an lxc-* tool on the container; its exit status, output decoded. */
function* lxc(name: string, p: ContainerPaths, args: string[] = [], timeoutMs = TOOL_TIMEOUT): EffectGen<{ code: number | undefined; out: string; err: string }> {
  const r = yield* fx.run(tool(name), [...target(p), ...args], { timeoutMs, maxOutputBytes: 65536 });
  return { code: r.code ?? undefined, out: decodeUtf8(r.stdout), err: decodeUtf8(r.stderr).trim() };
}

/** LXC's state of the container: RUNNING, FROZEN, STOPPED, ... */
function* lxcState(p: ContainerPaths): EffectGen<string> {
  const r = yield* lxc('info', p, ['-s', '-H']);
  if (r.code !== 0) return 'STOPPED';
  return r.out.trim().split(/\s+/).pop() ?? 'STOPPED';
}

/** Is the recorded monitor still that process? */
const alive = (rt: Runtime) => fx.isAlive(rt.monitor, rt.monitorTicks);

/**
 * The watcher this driver instance started for each container (by container name), kept in the
 * instance's memory, not in the domain's record: the record is shared by every manager of the
 * node (virtkitd, a CLI command, an application), while each watches with a watcher of its own.
 * A record naming one manager's watcher made the others ignore their own watchers' exits.
 * A new instance (a restarted worker) starts empty, and its re-attach starts fresh watchers.
 */
const watchers = new Map<string, number>();

/**
 * Starts this manager's watcher: its exit (the container reached STOPPED) starts a
 * handle-event here. It dies with this host process (setpriv --pdeathsig): a short-lived
 * manager (a CLI command that re-attached) leaves none behind; other managers keep theirs.
 */
function* watch(ctx: Ctx, rt: Runtime): EffectGen<void> {
  watchers.set(rt.paths.name, yield* fx.spawn(SETPRIV, ['--pdeathsig', 'SIGTERM', tool('wait'), ...target(rt.paths), '-s', 'STOPPED'], { watchDomain: ctx.domain }));
}

/** Stops this manager's watcher of the container, if it has one (never another manager's). */
function* unwatch(rt: Runtime): EffectGen<void> {
  const w = watchers.get(rt.paths.name);
  watchers.delete(rt.paths.name);
  if (w === undefined) return;
  try {
    if ((yield* fx.exitedYet(w, 0)) === undefined) yield* fx.signal(w, 'sigterm');
  } catch (e) {
    if (!(e instanceof DriverError && (e.code === 'not-found' || e.code === 'grant-denied'))) throw e;
  }
}

/** The container is stopped: wait for its monitor to finish, drop its runtime dir. */
function* cleanup(rt: Runtime): EffectGen<void> {
  yield* unwatch(rt);
  if (!(yield* fx.exitedYet(rt.monitor, 3000))) log.warn(`LXC monitor ${rt.monitor} of ${rt.paths.name} still runs 3 s after the container stopped`);
  try {
    yield* fx.remove(rt.paths.dir, true);
  } catch (e) {
    log.warn(`could not remove ${rt.paths.dir}: ${(e as Error).message}`);
  }
}

/** Forces the container off (SIGKILL to its init), if it runs. */
function* kill(p: ContainerPaths): EffectGen<void> {
  const r = yield* lxc('stop', p, ['-k']);
  // 2: not running (already off).
  if (r.code !== 0 && r.code !== 2) throw new DriverError('driver-failed', `lxc-stop -k ${p.name}: ${r.err || `exit ${r.code}`}`);
}

function* stopped(ctx: Ctx, rt: Runtime, reason: 'shutdown' | 'destroyed' | 'crashed'): EffectGen<OperationResult<Runtime>> {
  yield* cleanup(rt);
  return { status: { state: 'shut-off', reason }, clearRuntime: true, events: [ev(ctx, 'stopped', reason)] };
}

function* start(ctx: Ctx): EffectGen<OperationResult<Runtime>> {
  const c = ctx.config!;
  const host = yield* detectCgroups();
  const paths = containerPaths(ctx.node.runtimeDir, c.uuid);
  let config: { text: string; warnings: string[] };
  try {
    config = buildConfig(c, paths, host);
  } catch (e) {
    if (e instanceof ConfigError) throw new DriverError('invalid-config', e.message);
    throw e;
  }
  for (const w of config.warnings) log.warn(`${ctx.domain}: ${w}`);
  // A fresh dir: nothing stale (log, pidfile, console socket) from an earlier run survives.
  yield* fx.remove(paths.dir, true);
  yield* fx.mkdir(paths.dir, { mode: 0o700 });
  // Not atomic (no temp file, no fsync): the dir is fresh and private, nothing reads the file
  // before lxc-start below, and it is volatile (rewritten at every start). The fsyncs of an
  // atomic write cost ~10 ms on a disk-backed runtime dir, a third of lxc-start itself.
  yield* fx.writeFile(paths.config, config.text, { mode: 0o600, atomic: false });
  // -d: LXC daemonizes its monitor and returns once the container runs (or failed to).
  // The init goes as argv (after --): lxc.init.cmd would split arguments on blanks.
  let rt: Runtime | undefined;
  try {
    const r = yield* lxc('start', paths, ['-d', '-p', paths.pidfile, '-o', paths.log, '-l', 'WARN', '--', ...(c.os.init ?? ['/sbin/init'])]);
    if (r.code !== 0) {
      const why = `${r.err ? `${r.err} | ` : ''}${yield* tail(paths.log)}`;
      throw new DriverError('driver-failed', `lxc-start ${ctx.domain} failed (exit ${r.code}): ${why}`);
    }
    const monitor = Number((yield* fx.readText(paths.pidfile)).trim());
    rt = { paths, monitor, monitorTicks: 0, cgroup: host.version };
    try {
      rt.monitorTicks = Number((yield* fx.processInfo(monitor)).startTimeTicks);
    } catch (e) {
      if (!(e instanceof DriverError && e.code === 'not-found')) throw e;
      // Its init has already exited (a short-lived command): it started, and stopped.
      yield* cleanup(rt);
      return { status: { state: 'shut-off', reason: 'shutdown' }, clearRuntime: true, events: [ev(ctx, 'started', 'booted'), ev(ctx, 'stopped', 'shutdown')] };
    }
    yield* watch(ctx, rt);
  } catch (e) {
    // Failed, or cancelled (even while lxc-start ran: its monitor may run on): a start that
    // does not complete leaves no container behind, as the record will say it is off.
    if (rt) yield* unwatch(rt);
    yield* kill(paths);
    yield* fx.remove(paths.dir, true);
    throw e;
  }
  return { status: { state: 'running', reason: 'booted' }, runtime: rt, events: [ev(ctx, 'started', 'booted')] };
}

/** LXC's state to ours. */
function statusOf(state: string): DomainStatus {
  switch (state) {
    case 'RUNNING': case 'THAWED': return { state: 'running', reason: 'booted' };
    case 'FROZEN': case 'FREEZING': return { state: 'paused', reason: 'user' };
    case 'STARTING': return { state: 'running', reason: 'starting-up' };
    case 'STOPPING': case 'ABORTING': return { state: 'shutting-down', reason: 'unknown' };
    default: return { state: 'shut-off', reason: 'unknown' };
  }
}

/** The container is gone while no operation of ours stopped it. */
function* gone(ctx: Ctx, rt: Runtime, reason: 'shutdown' | 'crashed'): EffectGen<OperationResult<Runtime>> {
  return yield* stopped(ctx, rt, reason);
}

/** Waits until LXC reports the container RUNNING again (after a reboot). */
function* waitRunning(p: ContainerPaths, timeoutMs: number): EffectGen<void> {
  const r = yield* lxc('wait', p, ['-s', 'RUNNING', '-t', String(Math.max(1, Math.ceil(timeoutMs / 1000)))], timeoutMs + 5000);
  if (r.code !== 0) throw new DriverError('timeout', `${p.name} did not run again within ${timeoutMs} ms: ${r.err}`);
}

function* handleEvent(ctx: Ctx): EffectGen<OperationResult<Runtime> | void> {
  const rt = ctx.runtime;
  const t = ctx.trigger;
  // Only the exit of this manager's current watcher says something (an earlier one was
  // replaced by a reboot, or stopped with the container by an operation of ours).
  if (!rt || !t || t.tag !== 'process-exited' || t.val[0] !== watchers.get(rt.paths.name)) return;
  watchers.delete(rt.paths.name);
  // Killed (by someone, not by us: we forget a watcher before stopping it) while the
  // container runs on: watch again, nothing happened to the container.
  if (t.val[1].signal && (yield* alive(rt)) && (yield* lxcState(rt.paths)) !== 'STOPPED') {
    yield* watch(ctx, rt);
    return { runtime: rt };
  }
  // The container reached STOPPED. Its monitor exits right after, unless the container
  // rebooted (the monitor starts it again).
  if (yield* fx.exitedYet(rt.monitor, 1500)) return yield* gone(ctx, rt, 'shutdown');
  yield* waitRunning(rt.paths, 10_000);
  yield* watch(ctx, rt);
  return { status: { state: 'running', reason: 'booted' }, runtime: rt, events: [ev(ctx, 'rebooted', 'booted')] };
}

function* shutdown(ctx: Ctx): EffectGen<OperationResult<Runtime>> {
  const rt = ctx.runtime!;
  const timeoutMs = Number(ctx.args.timeoutMs ?? 60_000);
  // --nokill: a container that ignores the halt signal stays up (destroy forces it off).
  const r = yield* lxc('stop', rt.paths, ['--nokill', '-t', String(Math.max(1, Math.ceil(timeoutMs / 1000)))], timeoutMs + 10_000);
  if (r.code !== 0 && r.code !== 2 && (yield* lxcState(rt.paths)) !== 'STOPPED') {
    throw new DriverError('timeout', `shutdown ${ctx.domain}: the container's init did not stop within ${timeoutMs} ms of the halt signal (${ctx.config?.driver?.lxc?.haltSignal ?? 'SIGPWR'}; set driver.lxc.haltSignal to what its init handles); it is still running: destroy forces it off`);
  }
  return yield* stopped(ctx, rt, 'shutdown');
}

function* reboot(ctx: Ctx): EffectGen<OperationResult<Runtime>> {
  const rt = ctx.runtime!;
  const timeoutMs = Number(ctx.args.timeoutMs ?? 60_000);
  const monitorBefore = rt.monitor;
  const r = yield* lxc('stop', rt.paths, ['-r', '-t', String(Math.max(1, Math.ceil(timeoutMs / 1000)))], timeoutMs + 10_000);
  if (r.code !== 0) throw new DriverError('driver-failed', `reboot ${ctx.domain}: lxc-stop -r failed (exit ${r.code}): ${r.err}`);
  // The watcher saw the STOPPED between the two runs: ours, not an event. A fresh one watches on.
  yield* unwatch(rt);
  if (!(yield* alive(rt))) return yield* gone(ctx, { ...rt, monitor: monitorBefore }, 'shutdown');
  yield* waitRunning(rt.paths, timeoutMs);
  yield* watch(ctx, rt);
  return { status: { state: 'running', reason: 'booted' }, runtime: rt, events: [ev(ctx, 'rebooted', 'booted')] };
}

/** One `KEY value` per line, as `lxc-info -H` prints. */
function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(l);
    if (m) out[m[1]!.trim()] = m[2]!.trim();
  }
  return out;
}

function* cgroupValue(p: ContainerPaths, key: string): EffectGen<string | undefined> {
  const r = yield* lxc('cgroup', p, [key]);
  return r.code === 0 && r.out.trim() !== '' ? r.out.trim() : undefined;
}

function* info(ctx: Ctx): EffectGen<OperationResult<Runtime>> {
  const c = ctx.config!;
  const status = ctx.status ?? { state: 'shut-off', reason: 'unknown' };
  const rt = ctx.runtime;
  const limitKib = BigInt(c.memoryMiB) * 1024n;
  if (!rt) return { info: { state: status.state, reason: status.reason, maxMemoryKib: limitKib, memoryKib: 0n, vcpus: c.vcpus, cpuTimeNs: 0n } };
  const i = parseInfo((yield* lxc('info', rt.paths, ['-H'])).out);
  const limit = Number((yield* cgroupValue(rt.paths, rt.cgroup === 1 ? 'memory.limit_in_bytes' : 'memory.max')) ?? NaN);
  const oom = /oom_kill\s+(\d+)/.exec((yield* cgroupValue(rt.paths, rt.cgroup === 1 ? 'memory.oom_control' : 'memory.events')) ?? '')?.[1];
  const memBytes = Number(i['Memory use'] ?? 0);
  return {
    info: {
      state: status.state, reason: status.reason,
      maxMemoryKib: Number.isFinite(limit) ? BigInt(Math.floor(limit / 1024)) : limitKib,
      memoryKib: BigInt(Math.floor(memBytes / 1024)), vcpus: c.vcpus,
      cpuTimeNs: BigInt(Number(i['CPU use'] ?? 0)),
    },
    payload: {
      lxcState: i.State ?? 'UNKNOWN', initPid: Number(i.PID ?? 0) || null, monitorPid: rt.monitor,
      cgroup: `v${rt.cgroup}`, memoryLimitBytes: Number.isFinite(limit) ? limit : null, memoryUseBytes: memBytes,
      oomKills: oom === undefined ? null : Number(oom),
    },
  };
}

/**
 * Waits until the lxc-console of every earlier relay has exited (LXC gives the console to one
 * client at a time), and drops their logs. One still attached after a while serves another
 * client: the console is in use.
 */
function* waitForEarlierRelays(ctx: Ctx, p: ContainerPaths): EffectGen<void> {
  const logs = (yield* fx.list(p.dir)).filter((e) => /^console-\d+\.log$/.test(e.name)).map((e) => `${p.dir}/${e.name}`);
  for (const relayLog of logs) {
    const child = Number(/forked off child process (\d+)/.exec(yield* fx.readText(relayLog, 65536))?.[1] ?? 0);
    if (!child) continue; // still waiting for its client (it gives up after 10 s), or failed
    for (let i = 0; ; i++) {
      try {
        if ((yield* fx.processInfo(child)).state === 'Z') break;
      } catch (e) {
        if (e instanceof DriverError && e.code === 'not-found') break;
        throw e;
      }
      if (i >= 100) throw new DriverError('operation-invalid', `the console of ${ctx.domain} is in use by another client`);
      yield* fx.sleep(5);
    }
    yield* fx.remove(relayLog);
  }
}

/**
 * The console relay: socat accepts one client on a socket of its own and runs lxc-console on
 * a pty for it; it ends with the client (or after 10 s without one).
 */
function* console(ctx: Ctx): EffectGen<OperationResult<Runtime>> {
  const p = ctx.runtime!.paths;
  // socat parses its address strings: only plain path characters go into them.
  if (!/^[A-Za-z0-9_./-]+$/.test(p.lxcpath)) throw new DriverError('no-support', `no console: the runtime dir ${p.lxcpath} holds characters socat's address syntax would misread`);
  // lxc-console holds the console tty until it exits, a moment after its client left.
  yield* waitForEarlierRelays(ctx, p);
  // One socket per client: a relay that ends unlinks its own socket, never the next one's.
  const id = (Number((yield* fx.clock()).monotonicNs) / 1000) % 1e9;
  const sock = `${p.dir}/console-${Math.floor(id)}.sock`;
  const relayLog = `${p.dir}/console-${Math.floor(id)}.log`;
  yield* fx.spawn(SOCAT, [
    // -d -d: socat logs "listening on" once it listens, which is when the client may connect.
    '-d', '-d', '-t', '0.05',
    `UNIX-LISTEN:${sock},mode=600,unlink-early,accept-timeout=10`,
    `EXEC:${tool('console')} -n ${p.name} -P ${p.lxcpath} -t 0,pty,setsid,ctty,rawer`,
  ], { detached: true, logFile: relayLog });
  for (let i = 0; ; i++) {
    let text = '';
    try {
      text = yield* fx.readText(relayLog, 65536);
    } catch (e) {
      if (!(e instanceof DriverError && e.code === 'not-found')) throw e;
    }
    if (text.includes('listening on')) break;
    if (/ E /.test(text) || i > 1000) throw new DriverError(i > 1000 ? 'timeout' : 'driver-failed', `the console relay did not listen on ${sock}: ${yield* tail(relayLog)}`);
    yield* fx.sleep(2);
  }
  return { payload: { socket: sock } };
}

function* exec(ctx: Ctx): EffectGen<OperationResult<Runtime>> {
  const p = ctx.runtime!.paths;
  const a = execArgs(ctx.args);
  // The whole environment of the command: the caller's, or a PATH alone.
  const env = ctx.args.env === undefined ? { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' } : a.env;
  const args = [...target(p), '--clear-env', ...Object.entries(env).flatMap(([k, v]) => ['-v', `${k}=${v}`]), '--'];
  // lxc-attach has no working-directory option: a shell inside changes to it first.
  if (a.cwd !== undefined) args.push('/bin/sh', '-c', 'cd -- "$1" && shift && exec "$@"', 'virtkit-exec', a.cwd);
  args.push(...a.argv);
  const r = yield* fx.run(tool('attach'), args, { stdin: a.stdin, timeoutMs: a.timeoutMs ?? 60_000, maxOutputBytes: 1 << 20 });
  return { payload: execResult(r) };
}

/** "0-3,8" -> 5 */
const countCpus = (s: string) => s.trim().split(',').filter(Boolean).reduce((n, r) => {
  const [a, b] = r.split('-').map(Number);
  return n + (b === undefined ? 1 : b - a! + 1);
}, 0);

function* nodeInfo(): EffectGen<NodeInfo> {
  const cpuinfo = yield* fx.readText('/proc/cpuinfo', 4 << 20);
  const cpus = (cpuinfo.match(/^processor\s*:/gm) ?? []).length || 1;
  const memKib = Number(/^MemTotal:\s*(\d+)/m.exec(yield* fx.readText('/proc/meminfo'))?.[1] ?? 0);
  const version = decodeUtf8((yield* fx.run(tool('start'), ['--version'])).stdout).trim();
  const host = yield* detectCgroups(true);
  let cpuset = '';
  try {
    cpuset = (yield* fx.readText(`${CGROUP}/${host.version === 1 ? 'cpuset/cpuset.cpus' : 'cpuset.cpus.effective'}`)).trim();
  } catch {
    cpuset = '';
  }
  return {
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    cpus, mhz: Math.round(Number(/^cpu MHz\s*:\s*([\d.]+)$/m.exec(cpuinfo)?.[1] ?? 0)), sockets: 1, coresPerSocket: cpus, threadsPerCore: 1,
    memoryKib: BigInt(memKib), numa: [], hypervisor: 'LXC', hypervisorVersion: version,
    facts: [['cgroup', `v${host.version}`], ['memsw', String(host.memsw)], ['cpuset', cpuset || String(countCpus(`0-${cpus - 1}`))]],
  };
}

export const driver = defineDriver({
  name: 'lxc',
  version: '0.1.0',
  uriSchemes: ['lxc'],
  features: ['suspend', 'reboot', 'graceful-shutdown', 'console', 'reattach', 'exec'],
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      haltSignal: { type: 'string', pattern: '^SIG[A-Z0-9+]{2,12}$', description: 'signal a graceful shutdown sends the init (default SIGPWR; busybox init: SIGUSR2)' },
      rebootSignal: { type: 'string', pattern: '^SIG[A-Z0-9+]{2,12}$', description: 'signal a reboot sends the init (default SIGINT)' },
      cpuShares: { type: 'integer', minimum: 2, maximum: 262144, description: 'relative CPU weight (v1 cpu.shares; v2 cpu.weight derived)' },
      cpuset: { type: 'string', pattern: '^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$', description: 'CPUs the container may use, e.g. "0-1,3"' },
      pidsMax: { type: 'integer', minimum: 1, description: 'most tasks the container may have (pids.max)' },
      cgroup: {
        type: 'object', additionalProperties: false, description: 'raw cgroup settings; only those of the host\'s hierarchy apply, the others are ignored with a warning',
        properties: {
          v1: { type: 'object', additionalProperties: { type: 'string' } },
          v2: { type: 'object', additionalProperties: { type: 'string' } },
        },
      },
    },
  },
  operations: {
    // A manager killed in the middle of a start leaves a container the records do not know
    // (the domain is recorded as off): stop it, so the record is true again.
    *open(ctx) {
      for (const uuid of yield* fx.leftoverDirs(ctx)) {
        const paths = containerPaths(ctx.node.runtimeDir, uuid);
        log.warn(`stopping container ${uuid}: left by an interrupted operation, the domain is recorded as off`);
        yield* kill(paths);
        yield* fx.remove(paths.dir, true);
      }
      return {};
    },
    *define(ctx) {
      const c = ctx.config!;
      if (c.os?.type !== 'container') throw new DriverError('invalid-config', 'lxc:// runs containers: os.type must be "container"');
      try {
        buildConfig(c, containerPaths(ctx.node.runtimeDir, c.uuid), { version: 1, memsw: false });
      } catch (e) {
        if (e instanceof ConfigError) throw new DriverError('invalid-config', e.message);
        throw e;
      }
      return {};
    },
    start,
    shutdown,
    *destroy(ctx) {
      const rt = ctx.runtime!;
      yield* kill(rt.paths);
      return yield* stopped(ctx, rt, 'destroyed');
    },
    reboot,
    *suspend(ctx) {
      const rt = ctx.runtime!;
      const r = yield* lxc('freeze', rt.paths);
      if (r.code !== 0) throw new DriverError('driver-failed', `lxc-freeze ${ctx.domain}: ${r.err || `exit ${r.code}`}`);
      return { status: { state: 'paused', reason: 'user' }, runtime: rt, events: [ev(ctx, 'suspended', 'user')] };
    },
    *resume(ctx) {
      const rt = ctx.runtime!;
      const r = yield* lxc('unfreeze', rt.paths);
      if (r.code !== 0) throw new DriverError('driver-failed', `lxc-unfreeze ${ctx.domain}: ${r.err || `exit ${r.code}`}`);
      return { status: { state: 'running', reason: 'unpaused' }, runtime: rt, events: [ev(ctx, 'resumed', 'unpaused')] };
    },
    info,
    *'node-info'() {
      return { node: yield* nodeInfo() };
    },
    *'handle-event'(ctx) {
      return yield* handleEvent(ctx);
    },
    *reattach(ctx) {
      const rt = ctx.runtime!;
      if (!(yield* alive(rt))) return yield* gone(ctx, rt, 'crashed');
      const state = yield* lxcState(rt.paths);
      if (state === 'STOPPED') return yield* gone(ctx, rt, 'shutdown');
      // This manager watches with a watcher of its own (unless it already has one running).
      const mine = watchers.get(rt.paths.name);
      if (ctx.args.watch !== false && (mine === undefined || (yield* fx.exitedYet(mine, 0)) !== undefined)) yield* watch(ctx, rt);
      return { status: statusOf(state), runtime: rt };
    },
    console,
    exec,
  },
});
