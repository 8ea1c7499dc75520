// test:///default: an in-memory hypervisor, for people who test their management tools.
// Like libvirt's test driver, a node starts with one running domain `test`, or with the
// node a JSON document describes (test:///ABSOLUTE/PATH.json). Domains do nothing but
// change state; CPU time advances while they run. The host keeps all state, per connection.
import { defineDriver, fx, DriverError, execArgs, execResult, type OperationContext, type DomainStatus, type NodeInfo, type DomainRecord, type EffectGen } from '@virtkit/driver-sdk/guest';

interface Config {
  name: string;
  uuid?: string;
  memoryMiB: number;
  maxMemoryMiB?: number;
  vcpus: number;
  lifecycle?: { onPoweroff?: string; onReboot?: string; onCrash?: string };
  driver?: { test?: { bootDelayMs?: number } };
}

/** What the host persists for a running domain on our behalf. */
interface Runtime {
  bootedAtMs: number;
  /** CPU time accumulated up to `since`, and the monotonic time the domain last ran from. */
  cpuNs: number;
  since?: number;
}

type Ctx = OperationContext<Config, Runtime>;

const DEFAULT_NODE: NodeInfo = {
  cpuModel: 'virtkit-test-cpu',
  cpus: 16,
  mhz: 1400,
  sockets: 2,
  coresPerSocket: 4,
  threadsPerCore: 2,
  memoryKib: 16n * 1024n * 1024n,
  numa: [
    { id: 0, cpus: new Uint32Array([0, 1, 2, 3, 4, 5, 6, 7]), memoryKib: 8n * 1024n * 1024n },
    { id: 1, cpus: new Uint32Array([8, 9, 10, 11, 12, 13, 14, 15]), memoryKib: 8n * 1024n * 1024n },
  ],
  hypervisor: 'test',
  hypervisorVersion: '0.1.0',
  facts: [['accelerator', 'none']],
};

const DEFAULT_DOMAIN = {
  name: 'test',
  uuid: 'a2c3e8d4-41f1-4b8a-9a39-3f3c0c1d7e10',
  memoryMiB: 8192,
  vcpus: 2,
  os: { type: 'hvm' },
};

const running = (reason: DomainStatus['reason']): DomainStatus => ({ state: 'running', reason });
const shutOff = (reason: DomainStatus['reason']): DomainStatus => ({ state: 'shut-off', reason });

function nowNs(t: { monotonicNs: bigint }): number {
  return Number(t.monotonicNs);
}

/** CPU time up to now: what was accumulated plus the current run, if running. */
function cpuTime(rt: Runtime | undefined, now: number): number {
  if (!rt) return 0;
  return rt.cpuNs + (rt.since !== undefined ? now - rt.since : 0);
}

function* boot(ctx: Ctx) {
  const delay = ctx.config?.driver?.test?.bootDelayMs ?? 0;
  // A slow boot, in ten steps, so applications can test progress and cancellation.
  for (let i = 1; delay > 0 && i <= 10; i++) {
    yield* fx.sleep(Math.ceil(delay / 10));
    yield* fx.progress(i * 10, `booting ${ctx.domain}`);
  }
  const t = yield* fx.clock();
  const runtime: Runtime = { bootedAtMs: Number(t.wallMs), cpuNs: 0, since: nowNs(t) };
  return runtime;
}

function stopEvent(ctx: Ctx, reason: 'shutdown' | 'destroyed' | 'crashed') {
  return { domain: ctx.domain!, kind: 'stopped' as const, reason };
}

export const driver = defineDriver({
  name: 'test',
  version: '0.1.0',
  uriSchemes: ['test'],
  features: ['suspend', 'reboot', 'reset', 'node-document', 'per-connection-state'],
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      bootDelayMs: { type: 'integer', minimum: 0, maximum: 600000, description: 'Pretend booting takes this long, in ten progress steps.' },
    },
  },
  operations: {
    *open(ctx) {
      if (ctx.node.nodeDocument == null) {
        const t = yield* fx.clock();
        const rt: Runtime = { bootedAtMs: Number(t.wallMs), cpuNs: 0, since: nowNs(t) };
        return {
          domains: [{ config: JSON.stringify(DEFAULT_DOMAIN), status: running('booted'), runtime: JSON.stringify(rt) }],
          node: DEFAULT_NODE,
        };
      }
      let doc: { domains?: Array<{ config: unknown; state?: string }>; node?: Partial<Omit<NodeInfo, 'memoryKib' | 'numa'>> & { memoryKib?: number } };
      try {
        doc = JSON.parse(ctx.node.nodeDocument);
      } catch (e) {
        throw new DriverError('invalid-config', `node document is not JSON: ${(e as Error).message}`);
      }
      if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new DriverError('invalid-config', 'node document: expected an object with "domains" and "node"');
      const t = yield* fx.clock();
      const domains: DomainRecord[] = [];
      for (const [i, d] of (doc.domains ?? []).entries()) {
        const state = d.state ?? 'shut-off';
        if (!['running', 'paused', 'shut-off'].includes(state)) {
          throw new DriverError('invalid-config', `node document: /domains/${i}/state must be running, paused or shut-off, not ${JSON.stringify(state)}`);
        }
        const active = state !== 'shut-off';
        const rt: Runtime = { bootedAtMs: Number(t.wallMs), cpuNs: 0, since: state === 'running' ? nowNs(t) : undefined };
        domains.push({
          config: JSON.stringify(d.config),
          status: state === 'running' ? running('booted') : state === 'paused' ? { state: 'paused', reason: 'user' } : shutOff('unknown'),
          runtime: active ? JSON.stringify(rt) : undefined,
        });
      }
      const { memoryKib, ...rest } = doc.node ?? {};
      const node: NodeInfo = { ...DEFAULT_NODE, ...rest, ...(memoryKib !== undefined ? { memoryKib: BigInt(memoryKib) } : {}) };
      // The default NUMA layout describes the default CPUs: a node document that changes
      // the CPUs or memory gets one cell holding them all.
      if (doc.node && (doc.node.cpus !== undefined || memoryKib !== undefined)) {
        node.numa = [{ id: 0, cpus: new Uint32Array(Array.from({ length: node.cpus }, (_, i) => i)), memoryKib: node.memoryKib }];
      }
      return { domains, node };
    },

    *start(ctx) {
      const runtime = yield* boot(ctx);
      return { status: running('booted'), runtime, events: [{ domain: ctx.domain!, kind: 'started', reason: 'booted' }] };
    },

    *shutdown(ctx) {
      // The guest "powers off"; on_poweroff decides what happens next, as in libvirt.
      if (ctx.config?.lifecycle?.onPoweroff === 'restart') {
        const runtime = yield* boot(ctx);
        return { status: running('booted'), runtime, events: [stopEvent(ctx, 'shutdown'), { domain: ctx.domain!, kind: 'started', reason: 'booted' }] };
      }
      return { status: shutOff('shutdown'), clearRuntime: true, events: [stopEvent(ctx, 'shutdown')] };
    },

    *destroy(ctx) {
      return { status: shutOff('destroyed'), clearRuntime: true, events: [stopEvent(ctx, 'destroyed')] };
    },

    *reboot(ctx) {
      if (ctx.config?.lifecycle?.onReboot === 'destroy') {
        return { status: shutOff('shutdown'), clearRuntime: true, events: [stopEvent(ctx, 'shutdown')] };
      }
      return rebooted(ctx);
    },

    *reset(ctx) {
      return rebooted(ctx);
    },

    *suspend(ctx) {
      const t = yield* fx.clock();
      const rt = ctx.runtime!;
      return {
        status: { state: 'paused', reason: 'user' },
        runtime: { ...rt, cpuNs: cpuTime(rt, nowNs(t)), since: undefined },
        events: [{ domain: ctx.domain!, kind: 'suspended', reason: 'user' }],
      };
    },

    *resume(ctx) {
      const t = yield* fx.clock();
      return {
        status: running('unpaused'),
        runtime: { ...ctx.runtime!, since: nowNs(t) },
        events: [{ domain: ctx.domain!, kind: 'resumed', reason: 'unpaused' }],
      };
    },

    *info(ctx) {
      const t = yield* fx.clock();
      const c = ctx.config!;
      const status = ctx.status ?? shutOff('unknown');
      const kib = BigInt(c.memoryMiB) * 1024n;
      return {
        info: {
          state: status.state,
          reason: status.reason,
          maxMemoryKib: BigInt(c.maxMemoryMiB ?? c.memoryMiB) * 1024n,
          memoryKib: status.state === 'shut-off' ? 0n : kib,
          vcpus: c.vcpus,
          cpuTimeNs: BigInt(Math.max(0, Math.round(cpuTime(ctx.runtime, nowNs(t))))),
        },
        // Nothing else moves until the record changes: the host answers later calls itself.
        infoReuse: ctx.runtime?.since !== undefined ? { tag: 'monotonic', val: t.monotonicNs } : { tag: 'fixed' },
      };
    },

    *'node-info'() {
      return { node: DEFAULT_NODE };
    },

    // A fake: the domain runs no programs, so exec understands a tiny command set (see
    // FAKE_COMMANDS and the README) for applications to test their exec flows.
    *exec(ctx) {
      return { payload: execResult(yield* fakeCommand(execArgs(ctx.args))) };
    },
  },
});

type FakeResult = { code: number | null; signal?: string; stdout?: string | Uint8Array; stderr?: string };

/**
 * The commands `exec` knows on test:// domains. Anything else exits 127 with
 * "NAME: command not found" on stderr, as a shell would.
 */
const FAKE_COMMANDS: Record<string, (args: string[], x: ReturnType<typeof execArgs>) => EffectGen<FakeResult>> = {
  *echo(args) {
    return { code: 0, stdout: `${args.join(' ')}\n` };
  },
  *true() {
    return { code: 0 };
  },
  *false() {
    return { code: 1 };
  },
  *exit(args) {
    const n = Number(args[0] ?? '0');
    if (!Number.isInteger(n) || n < 0 || n > 255) return { code: 2, stderr: `exit: ${args[0]}: numeric argument 0..255 required\n` };
    return { code: n };
  },
  *cat(_args, x) {
    return { code: 0, stdout: x.stdin ?? new Uint8Array(0) };
  },
  *env(_args, x) {
    return { code: 0, stdout: Object.keys(x.env).sort().map((k) => `${k}=${x.env[k]}\n`).join('') };
  },
  *pwd(_args, x) {
    return { code: 0, stdout: `${x.cwd ?? '/'}\n` };
  },
  // `sleep MS`: takes that long (timeoutMs kills it: signal SIGKILL, no exit code).
  *sleep(args, x) {
    const ms = Number(args[0] ?? '0');
    if (!Number.isInteger(ms) || ms < 0) return { code: 1, stderr: `sleep: invalid time interval ${JSON.stringify(args[0])}\n` };
    if (x.timeoutMs !== undefined && x.timeoutMs < ms) {
      yield* fx.sleep(x.timeoutMs);
      return { code: null, signal: 'SIGKILL' };
    }
    yield* fx.sleep(ms);
    return { code: 0 };
  },
  // `kill SIGNAL`: the command dies of that signal (e.g. kill SIGTERM).
  *kill(args) {
    const sig = args[0] ?? 'SIGTERM';
    return { code: null, signal: sig.startsWith('SIG') ? sig : `SIG${sig}` };
  },
};

function* fakeCommand(x: ReturnType<typeof execArgs>): EffectGen<{ code: number | null; signal: string | null; stdout: Uint8Array | string; stderr: string }> {
  const [cmd, ...args] = x.argv;
  const run = Object.prototype.hasOwnProperty.call(FAKE_COMMANDS, cmd!) ? FAKE_COMMANDS[cmd!] : undefined;
  if (!run) return { code: 127, signal: null, stdout: '', stderr: `${cmd}: command not found\n` };
  const r = yield* run(args, x);
  return { code: r.code, signal: r.signal ?? null, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function rebooted(ctx: Ctx) {
  return { status: running('booted'), runtime: ctx.runtime, events: [{ domain: ctx.domain!, kind: 'rebooted' as const, reason: 'booted' as const }] };
}
