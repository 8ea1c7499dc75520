// The main thread's side of a plugin: one worker per plugin, a watchdog that stops a
// driver stuck inside a step, and a restart on the next call. A trap or a crash of the
// worker fails the operations in flight, never the host.
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VirtkitError, ErrorCodes, type ErrorCode } from '../errors.js';
import type { Grants } from '../plugins/grants.js';
import type { DriverDescription, OperationRequest, Outcome } from '../types.js';
import { DEFAULT_LIMITS, type EffectLimits, type WatchNotice } from './effects.js';
import { coalescingPoster, type FromWorker, type ToWorker, type WireError } from './protocol.js';
import type { WorkerInit } from './worker.js';

export interface PluginHostOptions {
  plugin: string;
  glueDir: string;
  grants: Grants;
  /** A driver that stays inside one step longer than this is stopped and reloaded. */
  stepTimeoutMs?: number;
  limits?: Partial<EffectLimits>;
  onLog?(plugin: string, level: string, message: string): void;
  /** Unsolicited input for a domain (see the channel-watch effect). */
  onWatch?(notice: WatchNotice): void;
  /** The worker was lost (stuck, crashed) and the next call starts a new one. */
  onLost?(why: string): void;
}

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?(percent: number, message: string): void;
}

interface Pending {
  resolve(o: Outcome): void;
  reject(e: Error): void;
  onProgress?: RunOptions['onProgress'];
  cleanup(): void;
}

/** The worker's entry must be JavaScript: under vitest (src/*.ts) use the built one. */
function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return join(dirname(here), 'worker.js');
  const built = join(dirname(here), '..', '..', 'dist', 'wasm', 'worker.js');
  if (!existsSync(built)) throw new VirtkitError('INTERNAL', `worker entry ${built} is missing: build @virtkit/core first (pnpm build)`);
  return built;
}

const toError = (e: WireError) =>
  new VirtkitError((ErrorCodes as readonly string[]).includes(e.code) ? (e.code as ErrorCode) : 'DRIVER_FAILED', e.message);

export class PluginHost {
  private worker?: Worker;
  /** Posts to the current worker, coalescing what one event-loop turn sends (see coalescingPoster). */
  private post?: (m: ToWorker) => void;
  private ready?: Promise<DriverDescription>;
  /** The current worker said ready: run() posts at once, without awaiting start(). */
  private running = false;
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private stepClock = new SharedArrayBuffer(8);
  private compiled?: Record<string, WebAssembly.Module>;
  /** While the worker starts: a driver stuck in describe() fails the start, not hangs it. */
  private rejectStart?: (e: Error) => void;
  private closing = false;
  private watchdog?: NodeJS.Timeout;
  /** How many times the worker was replaced (a stuck step, a crash). */
  restarts = 0;
  description?: DriverDescription;

  constructor(private opts: PluginHostOptions) {}

  get name() {
    return this.opts.plugin;
  }

  /** Starts the worker if needed; resolves with the driver's self-description. */
  start(): Promise<DriverDescription> {
    if (this.ready) return this.ready;
    const init: WorkerInit = {
      plugin: this.opts.plugin,
      glueDir: this.opts.glueDir,
      grants: this.opts.grants,
      limits: { ...DEFAULT_LIMITS, ...this.opts.limits },
      stepClock: this.stepClock,
      stepsAfterCancel: 16,
      // Channel handles from a replaced worker must never name a new worker's channels.
      channelBase: (this.restarts + 1) * 1_000_000,
    };
    const worker = new Worker(workerEntry(), { workerData: init, stdout: false, stderr: false });
    this.worker = worker;
    this.post = coalescingPoster<ToWorker>(
      (m) => worker.postMessage(m),
      (m, e) => {
        // A request that cannot be cloned fails its own call, as a throw from postMessage would.
        if (m.t !== 'run') return;
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        p.cleanup();
        p.reject(e instanceof Error ? e : new Error(String(e)));
        this.idle();
      },
    );
    // The first worker compiles the component and hands the modules back; later workers
    // (after a restart) get them: cloning a compiled Module shares its code.
    worker.postMessage({ t: 'modules', modules: this.compiled } satisfies ToWorker);
    this.ready = new Promise<DriverDescription>((resolve, reject) => {
      this.rejectStart = reject;
      const onMessage = (m: FromWorker): void => {
        switch (m.t) {
          case 'ready':
            this.description = m.description;
            this.rejectStart = undefined;
            if (this.worker === worker) this.running = true;
            this.idle();
            return resolve(m.description);
          case 'init-error':
            return reject(new VirtkitError('PLUGIN_REFUSED', `plugin ${this.opts.plugin} failed to start: ${m.error.message}`));
          case 'log':
            return this.opts.onLog?.(this.opts.plugin, m.level, m.message);
          case 'compiled':
            this.compiled ??= m.modules;
            return;
          case 'watch':
            return this.opts.onWatch?.(m.notice);
          case 'progress':
            return this.pending.get(m.id)?.onProgress?.(m.percent, m.message);
          case 'done':
          case 'failed': {
            const p = this.pending.get(m.id);
            if (!p) return;
            this.pending.delete(m.id);
            p.cleanup();
            if (m.t === 'done') p.resolve(m.outcome);
            else p.reject(toError(m.error));
            return this.idle();
          }
        }
      };
      worker.on('message', onMessage);
      worker.on('error', (e) => {
        reject(new VirtkitError('DRIVER_FAILED', `plugin ${this.opts.plugin} crashed: ${e.message}`));
        this.lost(worker, `plugin ${this.opts.plugin} crashed: ${e.message}`);
      });
      worker.on('exit', (code) => this.lost(worker, `plugin ${this.opts.plugin} worker exited (code ${code})`));
    });
    this.ready.catch(() => this.lost(worker, 'start failed'));
    this.arm();
    return this.ready;
  }

  /** The worker is gone: fail what was in flight; the next call starts a fresh one. */
  private lost(worker: Worker, why: string, code: ErrorCode = 'DRIVER_FAILED') {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.post = undefined;
    this.running = false;
    this.ready = undefined;
    this.restarts++;
    this.rejectStart?.(new VirtkitError(code, why));
    this.rejectStart = undefined;
    if (!this.closing) queueMicrotask(() => this.opts.onLost?.(why));
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.cleanup();
      p.reject(new VirtkitError(code, why));
    }
    this.idle();
    void worker.terminate();
  }

  private idle() {
    if (this.pending.size === 0 && !this.rejectStart && this.watchdog) {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    }
  }

  private arm() {
    if (this.watchdog) return;
    const limit = this.opts.stepTimeoutMs ?? 5000;
    const clock = new Float64Array(this.stepClock);
    this.watchdog = setInterval(() => {
      const began = clock[0]!;
      if (began !== 0 && performance.timeOrigin + performance.now() - began > limit && this.worker) {
        this.lost(this.worker, `plugin ${this.opts.plugin} was stuck in one step for over ${limit} ms; its worker was stopped and will be reloaded`, 'TIMEOUT');
        clock[0] = 0;
      }
    }, Math.max(10, Math.min(250, limit / 4)));
    this.watchdog.unref();
  }

  async run(request: OperationRequest, opts: RunOptions = {}): Promise<Outcome> {
    if (!this.running) await this.start();
    const post = this.post;
    if (!post) throw new VirtkitError('DRIVER_FAILED', `plugin ${this.opts.plugin} was lost before the operation began`);
    const id = this.nextId++;
    return new Promise<Outcome>((resolve, reject) => {
      const onAbort = () => post({ t: 'cancel', id });
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { resolve, reject, onProgress: opts.onProgress, cleanup: () => opts.signal?.removeEventListener('abort', onAbort) });
      this.arm();
      post({ t: 'run', id, request });
      if (opts.signal?.aborted) onAbort();
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.closing = true;
    // Operations in flight fail (they would never finish), then the worker goes.
    if (w) this.lost(w, `plugin ${this.opts.plugin} was closed`);
    if (w) this.restarts--; // a close is not a restart
    if (w) await w.terminate();
  }
}
