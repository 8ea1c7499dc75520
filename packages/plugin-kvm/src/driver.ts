// qemu:///system: QEMU/KVM domains driven over QMP. The driver does no I/O of its own:
// it yields effects (spawn QEMU detached, talk QMP on a watched channel, signal, wait) and
// the host performs them under the plugin's grant. QEMU runs sandboxed (-sandbox on,
// optionally -runas) and detached, so it outlives the manager; a new manager re-attaches
// from the runtime record.
import { defineDriver, fx, log, decodeUtf8, DriverError, type EffectGen, type OperationContext, type OperationResult, type LifecycleEvent, type DomainStatus, type NodeInfo, type CpuTimeSource } from '@virtkit/driver-sdk/guest';
import { buildArgv, chooseAccel, domainPaths, tapName, type DomainConfig, type DomainPaths, type QemuSection } from './argv.js';

interface Runtime {
  pid: number;
  /** When the process started (clock ticks since boot): tells our QEMU from a reused pid. */
  startTicks: number;
  paths: DomainPaths;
  accel: 'kvm' | 'tcg';
  accelWhy: string;
  /** The QMP channel in this host process; re-opened by reattach after a restart. */
  channel?: number;
}

type Ctx = OperationContext<DomainConfig, Runtime>;

const EMULATOR = '/usr/bin/qemu-system-x86_64';
const IP = '/usr/sbin/ip';
const EVENTS = [{ field: 'event' }];
const QMP_TIMEOUT = 10_000;

const section = (ctx: Ctx): QemuSection => ctx.config?.driver?.qemu ?? {};
const ev = (ctx: Ctx, kind: LifecycleEvent['kind'], reason: LifecycleEvent['reason']): LifecycleEvent => ({ domain: ctx.domain!, kind, reason });

function* exists(path: string): EffectGen<boolean> {
  try {
    return (yield* fx.stat(path)) !== undefined;
  } catch (e) {
    if (e instanceof DriverError && e.code === 'grant-denied') return false;
    throw e;
  }
}

/** Whether KVM is really usable, looked up once per driver instance (modules rarely change). */
let kvm: { devKvm: boolean; kvmIntel: boolean; kvmAmd: boolean } | undefined;

function* kvmFacts(fresh = false): EffectGen<{ devKvm: boolean; kvmIntel: boolean; kvmAmd: boolean }> {
  if (fresh) kvm = undefined;
  kvm ??= { devKvm: yield* exists('/dev/kvm'), kvmIntel: yield* exists('/sys/module/kvm_intel'), kvmAmd: yield* exists('/sys/module/kvm_amd') };
  return kvm;
}

function* tail(path: string, lines = 8): EffectGen<string> {
  try {
    return (yield* fx.readText(path, 65536)).trim().split('\n').slice(-lines).join(' | ');
  } catch {
    return '(no log)';
  }
}

/** Connects to QEMU's monitor: greeting, capabilities negotiation. */
function* qmpOpen(ctx: Ctx, path: string, timeoutMs = 1000, greetingMs = QMP_TIMEOUT): EffectGen<number> {
  const ch = yield* fx.openChannel(path, { timeoutMs, watch: { domain: ctx.domain!, events: EVENTS } });
  try {
    // A monitor busy with another client accepts the connection but never greets.
    yield* fx.receive(ch, [{ field: 'QMP' }], greetingMs);
  } catch (e) {
    yield* fx.closeChannel(ch);
    if (e instanceof DriverError && e.code === 'timeout') throw new DriverError('timeout', `QEMU's monitor ${path} did not greet within ${greetingMs} ms: another manager holds it (QMP serves one client)`);
    throw e;
  }
  yield* call(ch, 'qmp_capabilities');
  return ch;
}

/** QMP command ids: a late reply to a command that timed out is never taken for another's. */
let nextId = 1;

function* call(ch: number, execute: string, args?: Record<string, unknown>): EffectGen<any> {
  const id = `vk${nextId++}`;
  yield* fx.send(ch, args ? { execute, arguments: args, id } : { execute, id });
  const reply = yield* fx.receive(ch, [{ field: 'id', equals: JSON.stringify(id) }], QMP_TIMEOUT);
  if (reply.error) throw new DriverError('driver-failed', `QMP ${execute}: ${reply.error.class}: ${reply.error.desc}`);
  return reply.return;
}

/** A QMP command on the domain's channel, re-opening it once if this host lost it. */
function* qmp(ctx: Ctx, rt: Runtime, execute: string, args?: Record<string, unknown>): EffectGen<any> {
  if (rt.channel !== undefined) {
    try {
      return yield* call(rt.channel, execute, args);
    } catch (e) {
      if (!(e instanceof DriverError && e.code === 'not-found')) throw e;
    }
  }
  rt.channel = yield* qmpOpen(ctx, rt.paths.qmp);
  try {
    return yield* call(rt.channel, execute, args);
  } catch (e) {
    // Do not keep a monitor we cannot use: QMP serves one client.
    yield* fx.closeChannel(rt.channel);
    rt.channel = undefined;
    throw e;
  }
}

function* waitEvent(rt: Runtime, name: string, timeoutMs: number): EffectGen<any> {
  return yield* fx.receive(rt.channel!, [{ field: 'event', equals: JSON.stringify(name) }], timeoutMs);
}

/**
 * Drops the events our own commands caused (a reset's RESET, a cont's RESUME, a stop's
 * STOP), so handle-event does not report them again. Anything else (a guest powering off
 * or panicking meanwhile) stays queued for handle-event.
 */
function* drainEvents(rt: Runtime, caused: string[] = ['RESET', 'RESUME', 'STOP']): EffectGen<void> {
  const mine = caused.map((e) => ({ field: 'event', equals: JSON.stringify(e) }));
  while (rt.channel !== undefined && (yield* fx.tryReceive(rt.channel, mine)) !== undefined) { /* ours */ }
}

/** Stops QEMU for good: SIGTERM, then SIGKILL if it lingers; its runtime dir goes too. */
function* terminate(rt: Runtime): EffectGen<void> {
  if (rt.channel !== undefined) yield* fx.closeChannel(rt.channel);
  rt.channel = undefined;
  let signalled = false;
  try {
    yield* fx.signal(rt.pid, 'sigterm');
    signalled = true;
    // While QEMU exits: its files can go (it unlinks what it can on exit, and finds them gone).
    yield* fx.remove(rt.paths.dir, true);
    try {
      yield* fx.waitProcess(rt.pid, 3000);
    } catch (e) {
      if (!(e instanceof DriverError && e.code === 'timeout')) throw e;
      log.warn(`QEMU ${rt.pid} ignored SIGTERM for 3 s: SIGKILL`);
      yield* fx.signal(rt.pid, 'sigkill');
      yield* fx.waitProcess(rt.pid, 3000);
    }
  } catch (e) {
    // Already gone (not-found), or no longer ours (a reused pid: grant-denied): nothing to stop.
    if (!(e instanceof DriverError && (e.code === 'not-found' || e.code === 'grant-denied'))) throw e;
  }
  if (!signalled) yield* fx.remove(rt.paths.dir, true);
}

function* stopped(ctx: Ctx, rt: Runtime, reason: 'shutdown' | 'destroyed' | 'crashed', kind: LifecycleEvent['kind'] = 'stopped'): EffectGen<OperationResult<Runtime>> {
  yield* terminate(rt);
  return { status: { state: 'shut-off', reason }, clearRuntime: true, events: [ev(ctx, kind, reason)] };
}

/** The guest powered off (QEMU is paused by -no-shutdown): on_poweroff decides. */
function* poweredOff(ctx: Ctx, rt: Runtime, action = ctx.config?.lifecycle?.onPoweroff ?? 'destroy'): EffectGen<OperationResult<Runtime>> {
  if (action === 'restart') {
    yield* qmp(ctx, rt, 'system_reset');
    yield* qmp(ctx, rt, 'cont');
    yield* drainEvents(rt);
    return { status: { state: 'running', reason: 'booted' }, runtime: rt, events: [ev(ctx, 'stopped', 'shutdown'), ev(ctx, 'started', 'booted')] };
  }
  if (action === 'preserve') return { status: { state: 'paused', reason: 'shutdown' }, runtime: rt, events: [ev(ctx, 'suspended', 'shutdown')] };
  return yield* stopped(ctx, rt, 'shutdown');
}

/** Presses the ACPI power button until the guest reports SHUTDOWN, or the time is up. */
function* powerdown(ctx: Ctx, rt: Runtime, verb: string): EffectGen<void> {
  const timeoutMs = Number(ctx.args.timeoutMs ?? 60_000);
  const retry = section(ctx).powerdownRetryMs ?? 1000;
  const t0 = Number((yield* fx.clock()).monotonicNs) / 1e6;
  for (;;) {
    // A press before the guest's ACPI handler runs is lost: press again until it counts.
    yield* qmp(ctx, rt, 'system_powerdown');
    const now = Number((yield* fx.clock()).monotonicNs) / 1e6;
    const left = timeoutMs - (now - t0);
    if (left <= 0) break;
    try {
      yield* waitEvent(rt, 'SHUTDOWN', Math.min(retry, left));
      return;
    } catch (e) {
      if (!(e instanceof DriverError && e.code === 'timeout')) throw e;
    }
  }
  throw new DriverError('timeout', `${verb} ${ctx.domain}: the guest did not power off within ${timeoutMs} ms of pressing the ACPI power button (it may have no ACPI support, or ignore it); it is still running: destroy forces it off`);
}

function* start(ctx: Ctx): EffectGen<OperationResult<Runtime>> {
  const c = ctx.config!;
  const q = section(ctx);
  const { accel, why } = chooseAccel(q.accel, yield* kvmFacts());
  const paths = domainPaths(ctx.node.runtimeDir, c.uuid);
  // A fresh runtime dir: nothing stale (sockets, pidfile) from an earlier run survives.
  yield* fx.remove(paths.dir, true);
  yield* fx.mkdir(paths.dir, { mode: 0o700 });
  yield* fx.progress(10, `starting QEMU (${accel}: ${why})`);
  const pid = yield* fx.spawn(q.emulator ?? EMULATOR, buildArgv(c, paths, accel), { detached: true, logFile: paths.log, watchDomain: ctx.domain });
  const rt: Runtime = { pid, startTicks: 0, paths, accel, accelWhy: why };
  try {
    // QEMU makes its monitor socket early; until then connecting fails: retry briefly.
    for (let i = 0; rt.channel === undefined; i++) {
      try {
        rt.channel = yield* qmpOpen(ctx, paths.qmp);
      } catch (e) {
        if (!(e instanceof DriverError) || (e.code !== 'io-error' && e.code !== 'not-found')) throw e;
        // Waiting a little for QEMU to exit is the pause between tries: an exit ends it at once.
        const exit = yield* fx.exitedYet(pid, 3);
        if (exit) throw new DriverError('driver-failed', `QEMU exited (${exit.code != null ? `code ${exit.code}` : `signal ${exit.signal ?? 'unknown'}`}) before its monitor came up: ${yield* tail(paths.log)}`);
        if (i > 3000) throw new DriverError('timeout', `QEMU's monitor ${paths.qmp} did not come up within 10 s`);
      }
    }
    rt.startTicks = Number((yield* fx.processInfo(pid)).startTimeTicks);
    // QEMU created the taps (it runs as root); put each on its bridge before the guest runs.
    for (const [i, n] of (c.devices?.interfaces ?? []).entries()) {
      if (n.type !== 'bridge') continue;
      const tap = tapName(c.uuid, i);
      const r = yield* fx.run(IP, ['link', 'set', 'dev', tap, 'master', n.bridge!, 'up'], { timeoutMs: 5000 });
      if (r.code !== 0) throw new DriverError('driver-failed', `cannot put ${tap} on bridge ${n.bridge}: ${decodeUtf8(r.stderr).trim()}`);
    }
    yield* fx.progress(80, 'resuming vCPUs');
    yield* call(rt.channel, 'cont');
    yield* drainEvents(rt);
  } catch (e) {
    yield* terminate(rt);
    throw e;
  }
  return { status: { state: 'running', reason: 'booted' }, runtime: rt, events: [ev(ctx, 'started', 'booted')] };
}

/** QEMU's own run state to ours. */
function statusOf(qs: { status: string }): DomainStatus {
  switch (qs.status) {
    case 'running': return { state: 'running', reason: 'booted' };
    case 'paused': case 'suspended': case 'prelaunch': return { state: 'paused', reason: 'user' };
    case 'shutdown': return { state: 'paused', reason: 'shutdown' };
    case 'guest-panicked': return { state: 'crashed', reason: 'panicked' };
    case 'io-error': return { state: 'paused', reason: 'io-error' };
    default: return { state: 'paused', reason: 'unknown' };
  }
}

/** Is the recorded QEMU still the process with that pid? */
const alive = (rt: Runtime) => fx.isAlive(rt.pid, rt.startTicks);

/** Whether pid is a running QEMU started for this uuid. */
function* isQemuOf(pid: number, uuid: string): EffectGen<boolean> {
  try {
    const p = yield* fx.processInfo(pid);
    const i = p.argv.indexOf('-uuid');
    return p.state !== 'Z' && i >= 0 && p.argv[i + 1] === uuid;
  } catch (e) {
    if (e instanceof DriverError && (e.code === 'not-found' || e.code === 'grant-denied')) return false;
    throw e;
  }
}

function* gone(ctx: Ctx, rt: Runtime): EffectGen<OperationResult<Runtime>> {
  if (rt.channel !== undefined) yield* fx.closeChannel(rt.channel);
  try {
    yield* fx.remove(rt.paths.dir, true);
  } catch (e) {
    log.warn(`could not remove ${rt.paths.dir}: ${(e as Error).message}`);
  }
  return { status: { state: 'shut-off', reason: 'crashed' }, clearRuntime: true, events: [ev(ctx, 'stopped', 'crashed')] };
}

function* handleEvent(ctx: Ctx): EffectGen<OperationResult<Runtime> | void> {
  const rt = ctx.runtime;
  const t = ctx.trigger;
  if (!rt || !t) return;
  if (t.tag === 'process-exited') {
    if (t.val[0] !== rt.pid) return;
    return yield* gone(ctx, rt);
  }
  if (t.tag === 'channel-closed') {
    if (t.val[0] !== rt.channel) return;
    rt.channel = undefined;
    if (yield* alive(rt)) return { runtime: rt }; // QEMU lives on; the next operation re-opens QMP
    return yield* gone(ctx, rt);
  }
  if (t.val !== rt.channel) return;
  let status: DomainStatus | undefined;
  const events: LifecycleEvent[] = [];
  for (;;) {
    const m = yield* fx.tryReceive(rt.channel, EVENTS);
    if (!m) break;
    switch (m.event) {
      case 'SHUTDOWN': {
        // The guest (or someone else on the host) powered it off: not one of our operations.
        const action = m.data?.reason === 'guest-reset' ? (ctx.config?.lifecycle?.onReboot ?? 'restart') : undefined;
        const r = action === 'destroy' ? yield* stopped(ctx, rt, 'shutdown') : yield* poweredOff(ctx, rt);
        return { ...r, events: [...events, ...(r.events ?? [])] };
      }
      case 'GUEST_PANICKED': {
        const action = ctx.config?.lifecycle?.onCrash ?? 'destroy';
        events.push(ev(ctx, 'crashed', 'panicked'));
        if (action === 'restart' || action === 'coredump-restart') {
          yield* qmp(ctx, rt, 'system_reset');
          yield* qmp(ctx, rt, 'cont');
          yield* drainEvents(rt);
          return { status: { state: 'running', reason: 'booted' }, runtime: rt, events: [...events, ev(ctx, 'started', 'booted')] };
        }
        if (action === 'preserve') return { status: { state: 'crashed', reason: 'panicked' }, runtime: rt, events };
        yield* terminate(rt);
        return { status: { state: 'crashed', reason: 'panicked' }, clearRuntime: true, events };
      }
      case 'STOP':
        status = { state: 'paused', reason: 'user' };
        events.push(ev(ctx, 'suspended', 'user'));
        break;
      case 'RESUME':
        status = { state: 'running', reason: 'unpaused' };
        events.push(ev(ctx, 'resumed', 'unpaused'));
        break;
      case 'RESET':
        events.push(ev(ctx, 'rebooted', 'booted'));
        break;
    }
  }
  return { status, events, runtime: rt };
}

function parseCpuinfo(text: string) {
  const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? 'unknown';
  const mhz = Math.round(Number(/^cpu MHz\s*:\s*([\d.]+)$/m.exec(text)?.[1] ?? 0));
  const blocks = text.split(/\n\s*\n/).filter((b) => /^processor\s*:/m.test(b));
  const sockets = new Set(blocks.map((b) => /^physical id\s*:\s*(\d+)/m.exec(b)?.[1] ?? '0'));
  const cores = new Set(blocks.map((b) => `${/^physical id\s*:\s*(\d+)/m.exec(b)?.[1] ?? '0'}/${/^core id\s*:\s*(\d+)/m.exec(b)?.[1] ?? '0'}`));
  const cpus = blocks.length || 1;
  const coresPerSocket = Math.max(1, Math.round(cores.size / sockets.size));
  return { model, mhz, cpus, sockets: sockets.size || 1, coresPerSocket, threadsPerCore: Math.max(1, Math.round(cpus / (cores.size || 1))) };
}

/** "0-3,8,10-11" -> [0,1,2,3,8,10,11] */
function cpuList(s: string): number[] {
  return s.trim().split(',').filter(Boolean).flatMap((r) => {
    const [a, b] = r.split('-').map(Number);
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });
}

function* nodeInfo(ctx: Ctx): EffectGen<NodeInfo> {
  const cpu = parseCpuinfo(yield* fx.readText('/proc/cpuinfo', 4 << 20));
  const memKib = Number(/^MemTotal:\s*(\d+)/m.exec(yield* fx.readText('/proc/meminfo'))?.[1] ?? 0);
  const numa = [];
  try {
    for (const e of (yield* fx.list('/sys/devices/system/node')).filter((d) => /^node\d+$/.test(d.name)).sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }))) {
      const id = Number(e.name.slice(4));
      const cpus = cpuList(yield* fx.readText(`/sys/devices/system/node/${e.name}/cpulist`));
      const kib = Number(/MemTotal:\s*(\d+)/.exec(yield* fx.readText(`/sys/devices/system/node/${e.name}/meminfo`))?.[1] ?? 0);
      numa.push({ id, cpus: new Uint32Array(cpus), memoryKib: BigInt(kib) });
    }
  } catch (e) {
    log.warn(`no NUMA information: ${(e as Error).message}`);
  }
  const emulator = section(ctx).emulator ?? EMULATOR;
  const version = /version (\S+)/.exec(decodeUtf8((yield* fx.run(emulator, ['--version'])).stdout))?.[1] ?? 'unknown';
  const machines = decodeUtf8((yield* fx.run(emulator, ['-machine', 'help'])).stdout)
    .split('\n').slice(1).map((l) => l.trim().split(/\s+/)[0]!).filter(Boolean);
  const { accel, why } = chooseAccel('auto', yield* kvmFacts(true));
  return {
    cpuModel: cpu.model, cpus: cpu.cpus, mhz: cpu.mhz, sockets: cpu.sockets, coresPerSocket: cpu.coresPerSocket, threadsPerCore: cpu.threadsPerCore,
    memoryKib: BigInt(memKib), numa, hypervisor: 'QEMU', hypervisorVersion: version,
    facts: [['accelerator', accel], ['accelerator-reason', why], ['kvm-usable', String(accel === 'kvm')], ['machine-types', machines.join(' ')]],
  };
}

export const driver = defineDriver({
  name: 'qemu',
  version: '0.1.0',
  uriSchemes: ['qemu'],
  features: ['suspend', 'reboot', 'reset', 'acpi-shutdown', 'console', 'reattach'],
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      accel: { enum: ['auto', 'kvm', 'tcg'], description: 'auto (default): KVM when a hardware KVM module is loaded, else TCG' },
      cpu: { type: 'string', pattern: '^[A-Za-z0-9_.,=+-]{1,128}$', description: 'CPU model (-cpu); default: QEMU\'s default' },
      machine: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'machine type; default pc' },
      emulator: { type: 'string', pattern: '^/[^\\u0000]*$', description: 'QEMU binary; must be a granted executable' },
      runAs: { type: 'string', pattern: '^[a-z_][a-z0-9_-]{0,31}$', description: 'run QEMU as this user (-runas)' },
      powerdownRetryMs: { type: 'integer', minimum: 50, maximum: 60000, description: 'graceful shutdown presses the power button again this often' },
    },
  },
  operations: {
    // A manager killed in the middle of a start leaves a QEMU the records do not know
    // (the domain is recorded as off): stop it, so the record is true again.
    *open(ctx) {
      const recorded = (ctx.args.domains ?? []) as Array<{ name: string; uuid?: string }>;
      // Active ones are re-attached; busy ones are being started by another manager right now.
      for (const uuid of yield* fx.leftoverDirs(ctx)) {
        const paths = domainPaths(ctx.node.runtimeDir, uuid);
        let pid = 0;
        try {
          pid = Number((yield* fx.readText(paths.pidfile)).trim());
        } catch {
          pid = 0;
        }
        const name = recorded.find((d) => d.uuid === uuid)?.name ?? uuid;
        // Only the QEMU of this very domain: a stale pidfile's pid may now be another process.
        if (pid > 1 && !(yield* isQemuOf(pid, uuid))) pid = 0;
        if (pid > 1) log.warn(`stopping QEMU ${pid} of ${name}: left by an interrupted operation, the domain is recorded as off`);
        yield* terminate({ pid, startTicks: 0, paths, accel: 'tcg', accelWhy: '' });
      }
      return {};
    },
    start,
    *shutdown(ctx) {
      const rt = ctx.runtime!;
      yield* powerdown(ctx, rt, 'shutdown');
      return yield* poweredOff(ctx, rt);
    },
    *destroy(ctx) {
      return yield* stopped(ctx, ctx.runtime!, 'destroyed');
    },
    *reboot(ctx) {
      const rt = ctx.runtime!;
      yield* powerdown(ctx, rt, 'reboot');
      if (ctx.config?.lifecycle?.onReboot === 'destroy') return yield* stopped(ctx, rt, 'shutdown');
      yield* qmp(ctx, rt, 'system_reset');
      yield* qmp(ctx, rt, 'cont');
      yield* drainEvents(rt);
      return { status: { state: 'running', reason: 'booted' }, runtime: rt, events: [ev(ctx, 'rebooted', 'booted')] };
    },
    *reset(ctx) {
      const rt = ctx.runtime!;
      yield* qmp(ctx, rt, 'system_reset');
      yield* drainEvents(rt);
      return { runtime: rt, events: [ev(ctx, 'rebooted', 'booted')] };
    },
    *suspend(ctx) {
      const rt = ctx.runtime!;
      yield* qmp(ctx, rt, 'stop');
      // The STOP event is ours: take it, so handle-event does not report it again.
      yield* waitEvent(rt, 'STOP', QMP_TIMEOUT);
      return { status: { state: 'paused', reason: 'user' }, runtime: rt, events: [ev(ctx, 'suspended', 'user')] };
    },
    *resume(ctx) {
      const rt = ctx.runtime!;
      yield* qmp(ctx, rt, 'cont');
      // The RESUME event is ours: take it, so handle-event does not report it again.
      yield* waitEvent(rt, 'RESUME', QMP_TIMEOUT);
      return { status: { state: 'running', reason: 'unpaused' }, runtime: rt, events: [ev(ctx, 'resumed', 'unpaused')] };
    },
    *info(ctx) {
      const c = ctx.config!;
      const status = ctx.status ?? { state: 'shut-off', reason: 'unknown' };
      const rt = ctx.runtime;
      let cpuTimeNs = 0n;
      // Without a QEMU the info is fixed; with one, only its CPU time moves (the host reads it
      // from /proc itself on later calls, as libvirt does). A QEMU gone before its exit was
      // handled: no reuse, so the next call asks again.
      let infoReuse: CpuTimeSource | undefined = rt ? undefined : { tag: 'fixed' };
      if (rt) {
        try {
          const p = yield* fx.processInfo(rt.pid);
          // The pid is another process's now (QEMU gone, its exit not handled yet): not ours to count.
          if (!rt.startTicks || Number(p.startTimeTicks) === rt.startTicks) {
            cpuTimeNs = BigInt(Number(p.cpuTimeNs));
            infoReuse = { tag: 'process', val: [rt.pid, p.startTimeTicks] };
          }
        } catch (e) {
          if (!(e instanceof DriverError && e.code === 'not-found')) throw e;
        }
      }
      const kib = BigInt(c.memoryMiB) * 1024n;
      return {
        info: { state: status.state, reason: status.reason, maxMemoryKib: kib, memoryKib: rt ? kib : 0n, vcpus: c.vcpus, cpuTimeNs },
        payload: rt ? { accelerator: rt.accel, acceleratorReason: rt.accelWhy, pid: rt.pid } : undefined,
        infoReuse,
      };
    },
    *'node-info'(ctx) {
      return { node: yield* nodeInfo(ctx) };
    },
    *'handle-event'(ctx) {
      return yield* handleEvent(ctx);
    },
    *reattach(ctx) {
      const rt = ctx.runtime!;
      if (!(yield* alive(rt))) return yield* gone(ctx, rt);
      // Not watching: leave QMP (and the record of who holds it) to others.
      if (ctx.args.watch === false) return {};
      // This host may hold the monitor already (an earlier connection in this process).
      if (rt.channel !== undefined) {
        try {
          const qs = yield* call(rt.channel, 'query-status');
          return qs.status === 'shutdown' ? yield* poweredOff(ctx, rt) : { status: statusOf(qs), runtime: rt };
        } catch (e) {
          if (!(e instanceof DriverError && e.code === 'not-found')) throw e;
        }
      }
      rt.channel = undefined;
      try {
        rt.channel = yield* qmpOpen(ctx, rt.paths.qmp, 1000, 2000);
      } catch (e) {
        // QMP serves one client: another manager may hold it. The domain still runs.
        log.warn(`re-attaching ${ctx.domain}: QMP unavailable (${(e as Error).message}); keeping its recorded state`);
        return { runtime: rt };
      }
      const qs = yield* call(rt.channel, 'query-status');
      yield* drainEvents(rt);
      // The guest powered off while no manager watched (QEMU waits, -no-shutdown): apply
      // on_poweroff now.
      if (qs.status === 'shutdown') return yield* poweredOff(ctx, rt);
      return { status: statusOf(qs), runtime: rt };
    },
    *console(ctx) {
      return { payload: { socket: ctx.runtime!.paths.console } };
    },
  },
});
