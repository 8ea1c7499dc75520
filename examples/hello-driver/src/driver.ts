// hello:///default: the smallest useful virtkit driver, as a template to copy.
//
// Its "hypervisor" keeps nothing: a domain is only the config and status the host stores.
// Starting one runs `/usr/bin/echo started NAME` through the host (the one thing this driver
// is granted) and keeps what it printed in the domain's runtime record.
//
// A driver never does I/O itself. Each operation is a generator: it `yield*`s effects built
// with `fx` (run a program, read a file, ask the clock, ...), the host checks each against
// the plugin's grant, performs it and resumes the generator with the result, or throws a
// DriverError into it (GRANT_DENIED, TIMEOUT, ...). The return value is the outcome.
import { defineDriver, fx, decodeUtf8, DriverError, type OperationContext, type DomainStatus } from '@virtkit/driver-sdk/guest';

/** The parts of the (core-validated) domain config this driver reads. */
interface Config {
  name: string;
  memoryMiB: number;
  maxMemoryMiB?: number;
  vcpus: number;
}

/** What the host persists for a running domain on our behalf, and hands back each call. */
interface Runtime {
  /** What `echo` printed when the domain started. */
  greeting: string;
  startedAtMs: number;
}

type Ctx = OperationContext<Config, Runtime>;

/** Must be named in the manifest's `virtkit.grants.executables`, or the host denies it. */
const ECHO = '/usr/bin/echo';

export const driver = defineDriver({
  name: 'hello',
  version: '0.1.0',
  uriSchemes: ['hello'],
  // Every connection gets its own in-memory node: nothing outlives it.
  features: ['per-connection-state'],
  operations: {
    // A fresh node has no domains; the application defines them (the core stores configs,
    // so a driver that has nothing to do on define need not implement it).
    *open() {
      return { domains: [] };
    },

    *start(ctx: Ctx) {
      const out = yield* fx.run(ECHO, ['started', ctx.domain!], { timeoutMs: 5000, maxOutputBytes: 4096 });
      if (out.code !== 0) {
        throw new DriverError('driver-failed', `${ECHO} exited with ${out.code ?? out.signal}: ${decodeUtf8(out.stderr)}`);
      }
      const t = yield* fx.clock();
      const runtime: Runtime = { greeting: decodeUtf8(out.stdout).trim(), startedAtMs: Number(t.wallMs) };
      return {
        status: { state: 'running', reason: 'booted' },
        runtime,
        events: [{ domain: ctx.domain!, kind: 'started', reason: 'booted' }],
      };
    },

    *destroy(ctx: Ctx) {
      return {
        status: { state: 'shut-off', reason: 'destroyed' },
        clearRuntime: true,
        events: [{ domain: ctx.domain!, kind: 'stopped', reason: 'destroyed' }],
      };
    },

    *info(ctx: Ctx) {
      const c = ctx.config!;
      const status: DomainStatus = ctx.status ?? { state: 'shut-off', reason: 'unknown' };
      const kib = BigInt(c.memoryMiB) * 1024n;
      return {
        info: {
          state: status.state,
          reason: status.reason,
          maxMemoryKib: BigInt(c.maxMemoryMiB ?? c.memoryMiB) * 1024n,
          memoryKib: status.state === 'shut-off' ? 0n : kib,
          vcpus: c.vcpus,
          cpuTimeNs: 0n,
        },
        // Nothing here moves on its own: the host may answer the next info calls itself, until
        // the domain's config, status or runtime record changes (world 0.3.0).
        infoReuse: { tag: 'fixed' },
      };
    },
  },
});
