// Messages between the main thread and a plugin's worker.
import type { DriverDescription, OperationRequest, Outcome } from '../types.js';
import type { WatchNotice } from './effects.js';

export interface WireError {
  code: string;
  message: string;
}

export type ToWorker =
  | { t: 'run'; id: number; request: OperationRequest }
  | { t: 'cancel'; id: number }
  | { t: 'modules'; modules: Record<string, WebAssembly.Module> | undefined }
  | { t: 'close' }
  /** Several of the above, in order: what one event-loop turn sent after its first message. */
  | { t: 'batch'; messages: ToWorker[] };

export type FromWorker =
  | { t: 'ready'; description: DriverDescription }
  | { t: 'init-error'; error: WireError }
  | { t: 'log'; level: string; message: string }
  | { t: 'progress'; id: number; percent: number; message: string }
  | { t: 'watch'; notice: WatchNotice }
  | { t: 'compiled'; modules: Record<string, WebAssembly.Module> }
  | { t: 'done'; id: number; outcome: Outcome }
  | { t: 'failed'; id: number; error: WireError };

/**
 * Posts messages through `postMessage`, coalescing: the first message of an event-loop turn
 * goes at once (a lone call waits for nothing); the ones sent after it in the same turn are
 * posted together as one `batch` when the turn's I/O callbacks are done (setImmediate). Each
 * postMessage costs a serialization and a wake-up of the other thread; with several calls in
 * flight, a turn that starts eight of them posts two messages instead of eight.
 *
 * Used by the main thread only. The worker posts each message at once: a driver step may never
 * return (the watchdog then stops the worker), and what other operations finished before it
 * must have reached the main thread by then, not sit in a batch of the blocked thread.
 */
export function coalescingPoster<M extends { t: string }>(
  postMessage: (m: M | { t: 'batch'; messages: M[] }) => void,
  /** A queued message that could not be posted (it could not be cloned): what a throw from the first one would have told its sender. */
  onError: (m: M, e: unknown) => void,
): (m: M) => void {
  let queued: M[] | undefined;
  const flush = () => {
    const q = queued;
    queued = undefined;
    if (!q || q.length === 0) return;
    try {
      postMessage(q.length === 1 ? q[0]! : { t: 'batch', messages: q });
    } catch {
      // One of them cannot be cloned: post them one by one, so only that one fails.
      for (const m of q) {
        try {
          postMessage(m);
        } catch (e) {
          onError(m, e);
        }
      }
    }
  };
  return (m) => {
    if (queued) {
      queued.push(m);
      return;
    }
    queued = [];
    setImmediate(flush);
    postMessage(m);
  };
}
