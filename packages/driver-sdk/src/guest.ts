// The driver author's side of the contract: runs inside the Wasm component.
// A driver is a table of generator functions, one per operation it supports. Each yields
// typed effects (built with the helpers below) and returns an outcome; the host performs
// the effects under the plugin's grant and feeds results back through `operation.next`.
// Nothing here does I/O: the component has no way to.
import { log as hostLog } from 'virtkit:driver/host@0.3.0';
import type {
  DomainInfo,
  DomainRecord,
  DomainStatus,
  DriverDescription,
  NodeContext,
  NodeInfo,
  OperationKind,
  OperationRequest,
  EventTrigger,
  Outcome,
  Step,
} from 'virtkit:driver/driver@0.3.0';
import type {
  ClockReading,
  DirEntry,
  Effect,
  EffectOutcome,
  EffectResult,
  EnvVar,
  ExitStatus,
  FieldMatch,
  FileStat,
  Signal,
  ProcessInfo,
} from 'virtkit:driver/effects@0.3.0';
import type { CpuTimeSource, ErrorCode, LifecycleEvent } from 'virtkit:driver/types@0.3.0';

export type {
  DomainInfo, DomainRecord, DomainStatus, DriverDescription, NodeContext, NodeInfo, OperationKind,
  Outcome, EventTrigger, Effect, EffectResult, ExitStatus, FileStat, DirEntry, ClockReading, LifecycleEvent, ErrorCode, CpuTimeSource,
};

/** An error the host reported for an effect, or one the driver raises to fail its operation. */
export class DriverError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = 'DriverError';
  }
}

/** What an operation function receives: the request with its JSON fields parsed. */
export interface OperationContext<Config = Record<string, unknown>, Runtime = Record<string, unknown>> {
  kind: OperationKind;
  node: NodeContext;
  domain?: string;
  config?: Config;
  runtime?: Runtime;
  status?: DomainStatus;
  args: Record<string, unknown>;
  /** For handle-event: what happened (unsolicited channel input, a channel closing, a process exit). */
  trigger?: EventTrigger;
}

/** What an operation function returns: an outcome with JSON fields as plain values. */
export interface OperationResult<Runtime = Record<string, unknown>> {
  status?: DomainStatus;
  runtime?: Runtime;
  clearRuntime?: boolean;
  events?: LifecycleEvent[];
  info?: DomainInfo;
  node?: NodeInfo;
  domains?: DomainRecord[];
  payload?: unknown;
  /**
   * Since world 0.3.0, for `info`: this info and payload depend only on the request's config,
   * status and runtime record, and on the CPU time read from this source; the host may answer
   * later `info` calls with the same request itself (no driver step), reading the CPU time.
   * `{ tag: 'fixed' }` for a domain that does not run, `{ tag: 'process', val: [pid, startTimeTicks] }` for a
   * hypervisor process, `{ tag: 'monotonic', val: clock.monotonicNs }` for a simulated one.
   */
  infoReuse?: CpuTimeSource;
}

export type EffectGen<T> = Generator<Effect, T, EffectResult>;
export type OperationFn = (ctx: OperationContext<any, any>) => EffectGen<OperationResult<any> | void>;

export interface DriverDefinition {
  name: string;
  version: string;
  uriSchemes: string[];
  features?: string[];
  /** JSON Schema of the driver's own section of a domain config. */
  configSchema?: object;
  operations: Partial<Record<OperationKind, OperationFn>>;
}

function* perform<K extends EffectResult['tag']>(effect: Effect, want: K): EffectGen<Extract<EffectResult, { tag: K }>> {
  const result = yield effect;
  if (result.tag !== want) {
    throw new DriverError('internal', `host answered ${effect.tag} with ${result.tag}, expected ${want}`);
  }
  return result as Extract<EffectResult, { tag: K }>;
}

const env = (vars: Record<string, string> = {}): EnvVar[] => Object.entries(vars).map(([name, value]) => ({ name, value }));
// QuickJS has no TextEncoder/TextDecoder: UTF-8 through the URI escapes, which it has.
export function encodeUtf8(s: string): Uint8Array {
  const bin = unescape(encodeURIComponent(s));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function decodeUtf8(bytes: Uint8Array): string {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
  try {
    return decodeURIComponent(escape(bin));
  } catch {
    throw new DriverError('invalid-config', 'data is not valid UTF-8');
  }
}

// Neither btoa/atob nor Buffer exist in the QuickJS guest: base64 by hand.
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function encodeBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!, b = bytes[i + 1], c = bytes[i + 2];
    out += B64[a >> 2]! + B64[((a & 3) << 4) | ((b ?? 0) >> 4)]!;
    out += b === undefined ? '=' : B64[((b & 15) << 2) | ((c ?? 0) >> 6)]!;
    out += c === undefined ? '=' : B64[c & 63]!;
  }
  return out;
}

export function decodeBase64(text: string): Uint8Array {
  const clean = text.replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(clean) || clean.length % 4 === 1) throw new DriverError('invalid-config', 'data is not valid base64');
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0, acc = 0, n = 0;
  for (let i = 0; i < clean.length; i++) {
    acc = (acc << 6) | B64.indexOf(clean[i]!);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/** The arguments of an `exec` operation (since world 0.2.0), decoded. The host has validated them. */
export interface ExecArgs {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  stdin?: Uint8Array;
  timeoutMs?: number;
}

export function execArgs(args: Record<string, unknown>): ExecArgs {
  const argv = args.argv;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw new DriverError('invalid-config', 'argv must be a non-empty array of strings');
  return {
    argv: argv as string[],
    env: (args.env ?? {}) as Record<string, string>,
    cwd: typeof args.cwd === 'string' ? args.cwd : undefined,
    stdin: typeof args.stdin === 'string' ? decodeBase64(args.stdin) : undefined,
    timeoutMs: typeof args.timeoutMs === 'number' ? args.timeoutMs : undefined,
  };
}

/** The payload an `exec` operation returns: `return { payload: execResult(yield* fx.run(...)) }`. */
export function execResult(r: { code?: number | null; signal?: string | null; stdout: Uint8Array | string; stderr: Uint8Array | string; truncated?: boolean }) {
  const bytes = (b: Uint8Array | string) => (typeof b === 'string' ? encodeUtf8(b) : b);
  return { exitCode: r.code ?? null, signal: r.signal ?? null, stdout: encodeBase64(bytes(r.stdout)), stderr: encodeBase64(bytes(r.stderr)), truncated: r.truncated ?? false };
}

/** Typed effect helpers: `const t = yield* fx.clock()`. */
export const fx = {
  /** Run a program to completion; resolves with its exit status and bounded output. */
  *run(executable: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; stdin?: string | Uint8Array; maxOutputBytes?: number; timeoutMs?: number } = {}): EffectGen<ExitStatus> {
    const r = yield* perform({
      tag: 'spawn',
      val: {
        executable, args, env: env(opts.env), cwd: opts.cwd,
        mode: { tag: 'run', val: { stdin: opts.stdin === undefined ? undefined : typeof opts.stdin === 'string' ? encodeUtf8(opts.stdin) : opts.stdin, maxOutputBytes: opts.maxOutputBytes ?? 65536, timeoutMs: opts.timeoutMs ?? 30000 } },
      },
    }, 'exited');
    return r.val;
  },
  /** Start a program in the background; resolves with its pid. */
  *spawn(executable: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; detached?: boolean; logFile?: string; watchDomain?: string } = {}): EffectGen<number> {
    const r = yield* perform({
      tag: 'spawn',
      val: { executable, args, env: env(opts.env), cwd: opts.cwd, mode: { tag: 'background', val: { detached: opts.detached ?? false, logFile: opts.logFile, watchDomain: opts.watchDomain } } },
    }, 'spawned');
    return r.val;
  },
  *signal(pid: number, signal: Signal): EffectGen<void> {
    yield* perform({ tag: 'signal', val: { pid, signal } }, 'none');
  },
  *waitProcess(pid: number, timeoutMs: number): EffectGen<ExitStatus> {
    return (yield* perform({ tag: 'wait-process', val: { pid, timeoutMs } }, 'exited')).val;
  },
  /**
   * The exit of a process once it has exited (waiting up to `waitMs` for it), undefined while
   * it runs. A pid that is gone, or no longer the plugin's (reused by another program), counts
   * as exited, with nothing known of how.
   */
  *exitedYet(pid: number, waitMs = 1): EffectGen<{ code?: number; signal?: string } | undefined> {
    try {
      const s = yield* fx.waitProcess(pid, waitMs);
      return { code: s.code ?? undefined, signal: s.signal ?? undefined };
    } catch (e) {
      if (e instanceof DriverError && e.code === 'timeout') return undefined;
      if (e instanceof DriverError && (e.code === 'not-found' || e.code === 'grant-denied')) return {};
      throw e;
    }
  },
  /** CPU time, RSS and state of a process the plugin may signal. */
  *processInfo(pid: number): EffectGen<ProcessInfo> {
    return (yield* perform({ tag: 'process-info', val: pid }, 'process')).val;
  },
  /**
   * Whether `pid` is still the process that started at `startTicks` (its processInfo
   * startTimeTicks, recorded when it was started): false once it exited (a zombie too), or
   * when the pid now belongs to another process.
   */
  *isAlive(pid: number, startTicks: number): EffectGen<boolean> {
    try {
      const p = yield* fx.processInfo(pid);
      return p.state !== 'Z' && Number(p.startTimeTicks) === startTicks;
    } catch (e) {
      if (e instanceof DriverError && (e.code === 'not-found' || e.code === 'grant-denied')) return false;
      throw e;
    }
  },
  /**
   * Connects to a JSON-lines unix socket. With `watch`, messages matching `watch.events`
   * that no operation waits for (and the channel closing) start handle-event for the domain.
   */
  *openChannel(path: string, opts: { timeoutMs?: number; watch?: { domain: string; events: FieldMatch[] } } = {}): EffectGen<number> {
    return (yield* perform({ tag: 'channel-open', val: { path, framing: 'json-lines', timeoutMs: opts.timeoutMs ?? 5000, watch: opts.watch } }, 'channel')).val;
  },
  *send(channel: number, message: unknown): EffectGen<void> {
    yield* perform({ tag: 'channel-send', val: { channel, message: typeof message === 'string' ? message : JSON.stringify(message) } }, 'none');
  },
  /** Wait for the next message matching any of `filter` (all messages when empty), parsed. */
  *receive(channel: number, filter: FieldMatch[] = [], timeoutMs = 5000): EffectGen<any> {
    const m = (yield* perform({ tag: 'channel-receive', val: { channel, filter, timeoutMs } }, 'message')).val;
    return JSON.parse(m);
  },
  /**
   * For `open`: the per-domain runtime dirs (named by uuid) under the node's runtime dir that
   * none of the domains the host recorded accounts for (`ctx.args.domains`: not active, not
   * being started by a live manager), i.e. what an interrupted operation left. A dir of a
   * domain whose last start was interrupted (its manager died) is a leftover at once; one no
   * record accounts for only once older than `minAgeMs`: another manager may have begun a
   * start just after the host read its records.
   */
  *leftoverDirs(ctx: OperationContext<any, any>, minAgeMs = 30_000): EffectGen<string[]> {
    const recorded = (ctx.args.domains ?? []) as Array<{ uuid?: string; active?: boolean; busy?: boolean; interrupted?: boolean }>;
    const byUuid = new Map(recorded.filter((d) => d.uuid).map((d) => [d.uuid!, d]));
    let dirs: string[];
    try {
      dirs = (yield* fx.list(ctx.node.runtimeDir)).filter((e) => e.kind === 'directory' && /^[0-9a-f-]{36}$/.test(e.name)).map((e) => e.name);
    } catch (e) {
      if (e instanceof DriverError && e.code === 'not-found') return [];
      throw e;
    }
    const out: string[] = [];
    let now: number | undefined;
    for (const uuid of dirs) {
      const d = byUuid.get(uuid);
      if (d?.active || d?.busy) continue;
      if (!d?.interrupted) {
        const st = yield* fx.stat(`${ctx.node.runtimeDir}/${uuid}`);
        now ??= Number((yield* fx.clock()).wallMs);
        if (!st || now - Number(st.mtimeMs) < minAgeMs) continue;
      }
      out.push(uuid);
    }
    return out;
  },
  /** The next queued message matching `filter`, without waiting; undefined when none. */
  *tryReceive(channel: number, filter: FieldMatch[] = []): EffectGen<any> {
    try {
      return yield* fx.receive(channel, filter, 0);
    } catch (e) {
      if (e instanceof DriverError && e.code === 'timeout') return undefined;
      throw e;
    }
  },
  *closeChannel(channel: number): EffectGen<void> {
    yield* perform({ tag: 'channel-close', val: channel }, 'none');
  },
  *readFile(path: string, maxBytes = 1 << 20): EffectGen<Uint8Array> {
    return (yield* perform({ tag: 'file-read', val: { path, maxBytes } }, 'data')).val;
  },
  *readText(path: string, maxBytes = 1 << 20): EffectGen<string> {
    return decodeUtf8(yield* fx.readFile(path, maxBytes));
  },
  *writeFile(path: string, data: string | Uint8Array, opts: { mode?: number; atomic?: boolean } = {}): EffectGen<void> {
    const bytes = typeof data === 'string' ? encodeUtf8(data) : data;
    yield* perform({ tag: 'file-write', val: { path, data: bytes, mode: opts.mode ?? 0o600, atomic: opts.atomic ?? true } }, 'none');
  },
  *stat(path: string): EffectGen<FileStat | undefined> {
    // The glue hands an option's none over as null: normalize to undefined.
    return (yield* perform({ tag: 'file-stat', val: path }, 'stat')).val ?? undefined;
  },
  *list(path: string): EffectGen<DirEntry[]> {
    return (yield* perform({ tag: 'file-list', val: path }, 'entries')).val;
  },
  *remove(path: string, recursive = false): EffectGen<void> {
    yield* perform({ tag: 'file-remove', val: { path, recursive } }, 'none');
  },
  *mkdir(path: string, opts: { mode?: number; recursive?: boolean } = {}): EffectGen<void> {
    yield* perform({ tag: 'make-dir', val: { path, mode: opts.mode ?? 0o700, recursive: opts.recursive ?? true } }, 'none');
  },
  *sleep(ms: number): EffectGen<void> {
    yield* perform({ tag: 'sleep', val: ms }, 'none');
  },
  *clock(): EffectGen<ClockReading> {
    return (yield* perform({ tag: 'clock' }, 'clock')).val;
  },
  *progress(percent: number, message: string): EffectGen<void> {
    yield* perform({ tag: 'progress', val: { percent: Math.max(0, Math.min(100, Math.round(percent))), message } }, 'none');
  },
};

export const log = {
  debug: (m: string) => hostLog('debug', m),
  info: (m: string) => hostLog('info', m),
  warn: (m: string) => hostLog('warn', m),
  error: (m: string) => hostLog('error', m),
};

const parse = (text: string | undefined, what: string): any => {
  if (text == null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new DriverError('internal', `host passed invalid JSON as ${what}`);
  }
};

/**
 * componentize-qjs 0.4 lowers a u64 the guest returns only from a JS number (a BigInt traps),
 * while the WIT types say bigint: accept both from driver code, hand numbers to the glue.
 */
function u64AsNumbers<T>(v: T): T {
  if (typeof v === 'bigint') return Number(v) as T;
  if (Array.isArray(v)) return v.map(u64AsNumbers) as T;
  if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = u64AsNumbers(x);
    return out as T;
  }
  return v;
}

function toOutcome(r: OperationResult | void): Outcome {
  const o = r ?? {};
  return u64AsNumbers({
    status: o.status,
    runtime: o.runtime === undefined ? undefined : JSON.stringify(o.runtime),
    clearRuntime: o.clearRuntime ?? false,
    events: o.events ?? [],
    info: o.info,
    node: o.node,
    domains: o.domains ?? [],
    payload: o.payload === undefined ? undefined : JSON.stringify(o.payload),
    infoReuse: o.infoReuse,
  });
}

const asError = (e: unknown): { code: ErrorCode; message: string } =>
  e instanceof DriverError ? { code: e.code, message: e.message } : { code: 'driver-failed', message: String((e as Error)?.message ?? e) };

/** Turns a driver definition into the `driver` export of the component. */
export function defineDriver(def: DriverDefinition) {
  const operations = Object.keys(def.operations) as OperationKind[];
  class Operation {
    #gen: EffectGen<OperationResult | void> | undefined;
    #failure: { code: ErrorCode; message: string } | undefined;
    #started = false;
    #finished = false;

    constructor(request: OperationRequest) {
      const fn = def.operations[request.kind];
      if (!fn) {
        this.#failure = { code: 'no-support', message: `${def.name} does not support ${request.kind}` };
        return;
      }
      try {
        this.#gen = fn({
          kind: request.kind,
          // Options arrive as null from the glue when none: present them as undefined.
          node: { ...request.node, nodeDocument: request.node.nodeDocument ?? undefined },
          domain: request.domain ?? undefined,
          config: parse(request.config, 'config'),
          runtime: parse(request.runtime, 'runtime'),
          status: request.status ?? undefined,
          args: parse(request.args, 'args') ?? {},
          trigger: request.trigger ?? undefined,
        });
      } catch (e) {
        this.#failure = asError(e);
      }
    }

    next(previous: EffectOutcome | undefined): Step {
      if (this.#failure) {
        this.#finished = true;
        return { tag: 'failed', val: this.#failure };
      }
      if (this.#finished || !this.#gen) return { tag: 'failed', val: { code: 'internal', message: 'operation already finished' } };
      try {
        let r: IteratorResult<Effect, OperationResult | void>;
        if (!this.#started) {
          this.#started = true;
          r = this.#gen.next(undefined as never);
        } else if (!previous) {
          throw new DriverError('internal', 'host resumed an operation without the effect outcome');
        } else if (previous.tag === 'ok') {
          r = this.#gen.next(previous.val);
        } else {
          r = this.#gen.throw(new DriverError(previous.val.code, previous.val.message));
        }
        if (r.done) {
          this.#finished = true;
          return { tag: 'done', val: toOutcome(r.value) };
        }
        return { tag: 'effect', val: r.value };
      } catch (e) {
        this.#finished = true;
        return { tag: 'failed', val: asError(e) };
      }
    }
  }

  return {
    describe(): DriverDescription {
      return u64AsNumbers({
        name: def.name,
        version: def.version,
        uriSchemes: def.uriSchemes,
        operations,
        features: def.features ?? [],
        configSchema: def.configSchema ? JSON.stringify(def.configSchema) : undefined,
      });
    },
    Operation,
  };
}
