// A plugin's worker thread: instantiates its component, drives operations with the step
// protocol and performs their effects under the grant. Several operations run at once;
// a step is synchronous, so the main thread's watchdog can see one that never returns.
import { parentPort, workerData } from 'node:worker_threads';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { enableWasmExtendedConst } from './wasm-features.js';
import { VirtkitError, toWitCode } from '../errors.js';
import { GrantChecker, type Grants } from '../plugins/grants.js';
import { EffectPerformer, type EffectLimits } from './effects.js';
import { HOST_WORLD } from '../plugins/manifest.js';
import type { DriverDescription, EffectOutcome, OperationRequest, Step } from '../types.js';
import type { FromWorker, ToWorker } from './protocol.js';

// QuickJS components use Wasm extended-const (behind a flag in Node 20's V8).
enableWasmExtendedConst();

// The jco glue reads process.env.JCO_DEBUG on every call into the component (several per
// step). A worker's process.env is its own copy of the parent's, behind a native property
// interceptor that costs about a microsecond per read: a plain object with the same copy
// behaves the same here (nothing in this worker writes the environment) and reads for free.
Object.defineProperty(process, 'env', { value: { ...process.env }, writable: true, enumerable: true, configurable: true });

export interface WorkerInit {
  plugin: string;
  glueDir: string;
  grants: Grants;
  limits: EffectLimits;
  /** Shared with the main thread: [0] = when the current step began (a monotonic clock on the shared time origin), 0 between steps. */
  stepClock: SharedArrayBuffer;
  /** After cancellation, how many more steps a driver gets to clean up. */
  stepsAfterCancel: number;
  /** This worker's channel handles start here (unique across the plugin's restarts). */
  channelBase: number;
}

interface DriverOperation {
  next(previous: EffectOutcome | undefined): Step;
  [Symbol.dispose]?(): void;
}
interface Root {
  driver: { describe(): DriverDescription; Operation: new (req: OperationRequest) => DriverOperation };
}

const [HOST_MAJOR, HOST_MINOR] = HOST_WORLD.version.split('.').map(Number) as [number, number];
const init = workerData as WorkerInit;
const port = parentPort!;
// At once, never batched: see coalescingPoster.
const post = (m: FromWorker) => port.postMessage(m);
const stepClock = new Float64Array(init.stepClock);
/** Operations running per domain: a watched channel's notices wait for them to end. */
const busyDomains = new Map<string, number>();
const performer = new EffectPerformer(
  new GrantChecker(init.plugin, init.grants),
  init.limits,
  (notice) => post({ t: 'watch', notice }),
  (domain) => (busyDomains.get(domain) ?? 0) > 0,
  init.channelBase,
);

const hostImports = {
  log(level: string, message: string) {
    post({ t: 'log', level, message: String(message).slice(0, 8192) });
  },
};
// jco 1.35 keys imports without the version in its JS but with it in its types: give both,
// for every world minor this host loads (a 0.1.0 component imports host@0.1.0).
const imports: Record<string, typeof hostImports> = { 'virtkit:driver/host': hostImports };
for (let minor = 0; minor <= HOST_MINOR; minor++) imports[`virtkit:driver/host@${HOST_MAJOR}.${minor}.0`] = hostImports;

// A restarted worker gets the modules an earlier one compiled (a 'modules' message, which
// may come before our listener below exists: ports queue until then); the first compiles
// them and sends them back.
let sharedModules: (m: Record<string, WebAssembly.Module> | undefined) => void;
const modulesReady = new Promise<Record<string, WebAssembly.Module> | undefined>((r) => (sharedModules = r));
const modules = new Map<string, WebAssembly.Module>();
async function compile(name: string): Promise<WebAssembly.Module> {
  let m = modules.get(name) ?? (await modulesReady)?.[name];
  if (!m) {
    m = await WebAssembly.compile(await readFile(join(init.glueDir, name)));
    modules.set(name, m);
  }
  return m;
}

const { instantiate: instantiateGlue } = (await import(pathToFileURL(join(init.glueDir, 'driver.js')).href)) as {
  instantiate(
    getCoreModule: (name: string) => Promise<WebAssembly.Module>,
    imports: object,
    instantiateCore: (module: WebAssembly.Module, imports: WebAssembly.Imports) => Promise<WebAssembly.Instance>,
  ): Promise<Root>;
};

/**
 * The linear memories of the live instance. Worker resource limits do not cover Wasm memory,
 * so its size is checked after every step against limits.maxMemoryBytes: a driver over it is
 * treated as trapped (its operations fail, the instance is replaced).
 */
let memories: WebAssembly.Memory[] = [];
function instantiate(): Promise<Root> {
  const mine: WebAssembly.Memory[] = (memories = []);
  return instantiateGlue(compile, imports, async (module, imps) => {
    const instance = await WebAssembly.instantiate(module, imps);
    for (const v of Object.values(instance.exports)) if (v instanceof WebAssembly.Memory) mine.push(v);
    return instance;
  });
}
const MiB = (n: number) => `${Math.round(n / (1 << 20))} MiB`;
function checkMemory(): void {
  let bytes = 0;
  for (const m of memories) bytes += m.buffer.byteLength;
  if (bytes > init.limits.maxMemoryBytes) {
    throw new Error(`it holds ${MiB(bytes)} of Wasm memory, over its limit of ${MiB(init.limits.maxMemoryBytes)} (limits.maxMemoryBytes)`);
  }
}

/** The live instance; replaced (synchronously, so no call sees the poisoned one) after a trap. */
let root: Promise<Root> = instantiate();
/** Bumped when the instance trapped and was replaced: operations on the old one are lost. */
let generation = 0;
const running = new Map<number, { ac: AbortController; generation: number }>();

function step(op: DriverOperation, prev: EffectOutcome | undefined): Step {
  stepClock[0] = performance.timeOrigin + performance.now();
  try {
    const s = op.next(prev);
    checkMemory();
    return s;
  } finally {
    stepClock[0] = 0;
  }
}

function errorOf(e: unknown): { code: string; message: string } {
  if (e instanceof VirtkitError) return { code: e.code, message: e.message };
  return { code: 'DRIVER_FAILED', message: String((e as Error)?.message ?? e) };
}

async function replaceInstance(reason: string) {
  generation++;
  for (const [id, r] of running) {
    running.delete(id);
    r.ac.abort();
    post({ t: 'failed', id, error: { code: 'DRIVER_FAILED', message: `plugin ${init.plugin} trapped (${reason}); the operation was abandoned and the driver reloaded` } });
  }
  root = instantiate();
  await root;
}

async function run(id: number, request: OperationRequest) {
  const domain = request.domain ?? undefined;
  // An exec (a command inside the domain, maybe for minutes) changes nothing the domain's
  // events are about and waits for none of them: its events are not held back for it.
  if (domain === undefined || request.kind === 'exec') return runOp(id, request);
  busyDomains.set(domain, (busyDomains.get(domain) ?? 0) + 1);
  try {
    await runOp(id, request);
  } finally {
    const n = (busyDomains.get(domain) ?? 1) - 1;
    if (n > 0) busyDomains.set(domain, n);
    else {
      busyDomains.delete(domain);
      performer.flush(domain);
    }
  }
}

async function runOp(id: number, request: OperationRequest) {
  const ac = new AbortController();
  const mine = { ac, generation };
  running.set(id, mine);
  let op: DriverOperation | undefined;
  const fail = (error: { code: string; message: string }) => {
    if (running.get(id) !== mine) return;
    running.delete(id);
    post({ t: 'failed', id, error });
  };
  try {
    const instance = await root;
    if (mine.generation !== generation) return fail({ code: 'DRIVER_FAILED', message: `plugin ${init.plugin} was reloaded before ${request.kind} began` });
    try {
      // Under the step clock too: a driver looping in its constructor is stopped like one in a step.
      stepClock[0] = performance.timeOrigin + performance.now();
      op = new instance.driver.Operation(request);
    } catch (e) {
      return await replaceInstance(`constructing ${request.kind}: ${(e as Error).message}`);
    } finally {
      stepClock[0] = 0;
    }
    let prev: EffectOutcome | undefined;
    let afterCancel = 0;
    for (;;) {
      let s: Step;
      try {
        s = step(op, prev);
      } catch (e) {
        // The SDK turns every JS exception into a `failed` step, so a throw here is a trap
        // (or a value the glue could not lower): the instance is not to be trusted again.
        fail({ code: 'DRIVER_FAILED', message: `plugin ${init.plugin} trapped during ${request.kind}: ${(e as Error).message}` });
        return await replaceInstance((e as Error).message);
      }
      if (mine.generation !== generation || running.get(id) !== mine) return;
      if (s.tag === 'done') {
        running.delete(id);
        return post({ t: 'done', id, outcome: s.val });
      }
      if (s.tag === 'failed') {
        return fail({ code: s.val.code.toUpperCase().replace(/-/g, '_'), message: s.val.message });
      }
      if (ac.signal.aborted && ++afterCancel > init.stepsAfterCancel) {
        return fail({ code: 'CANCELLED', message: `${request.kind} cancelled` });
      }
      try {
        const result = await performer.perform(s.val, {
          signal: ac.signal,
          nodeUri: request.node.uri,
          onProgress: (percent, message) => post({ t: 'progress', id, percent, message }),
        });
        prev = { tag: 'ok', val: result };
      } catch (e) {
        const err = errorOf(e);
        if (err.code === 'GRANT_DENIED') post({ t: 'log', level: 'warn', message: `denied: ${err.message}` });
        prev = { tag: 'err', val: { code: toWitCode(err.code as never) as never, message: err.message } };
      }
      if (mine.generation !== generation || running.get(id) !== mine) return;
    }
  } catch (e) {
    fail(errorOf(e));
  } finally {
    op?.[Symbol.dispose]?.();
  }
}

function onMessage(m: ToWorker): void {
  if (m.t === 'batch') for (const x of m.messages) onMessage(x);
  else if (m.t === 'modules') sharedModules(m.modules);
  else if (m.t === 'run') void run(m.id, m.request);
  else if (m.t === 'cancel') running.get(m.id)?.ac.abort();
  else if (m.t === 'close') {
    performer.close();
    port.close();
  }
}
port.on('message', onMessage);

try {
  const instance = await root;
  stepClock[0] = performance.timeOrigin + performance.now();
  const description = instance.driver.describe();
  stepClock[0] = 0;
  if (!(await modulesReady)) post({ t: 'compiled', modules: Object.fromEntries(modules) });
  post({ t: 'ready', description });
} catch (e) {
  post({ t: 'init-error', error: errorOf(e) });
}
