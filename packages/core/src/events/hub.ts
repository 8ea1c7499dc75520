// Lifecycle events of one node: numbered and persisted by the store, then delivered to
// callbacks and async iterators. A slow iterator buffers; it never blocks the node. One that
// falls too far behind fails, naming the seq to resume from (the journal keeps the events).
import { VirtkitError } from '../errors.js';
import type { StateStore } from '../store/store.js';
import { JOURNAL_MAX_EVENTS } from '../store/memory-store.js';
import type { DomainEvent, DriverLifecycleEvent } from '../types.js';

/** Events an iterator may hold undelivered: a whole journal's replay and as much again live. */
export const MAX_QUEUED_EVENTS = 2 * JOURNAL_MAX_EVENTS;

export type EventListener = (e: DomainEvent) => void;

export class EventHub {
  private listeners = new Set<EventListener>();

  constructor(private store: StateStore) {}

  async emit(events: Array<Pick<DriverLifecycleEvent, 'domain' | 'kind' | 'reason'> & { detail?: string }>): Promise<DomainEvent[]> {
    const out: DomainEvent[] = [];
    for (const e of events) {
      const numbered = await this.store.appendEvent({ time: Date.now(), domain: e.domain, kind: e.kind, reason: e.reason, ...(e.detail ? { detail: e.detail } : {}) });
      out.push(numbered);
      for (const l of this.listeners) {
        try {
          l(numbered);
        } catch {
          // A listener's bug must not stop the others or the operation that emitted.
        }
      }
    }
    return out;
  }

  on(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Events as an async iterator. With `since`, first replays what the store still has after
   * that seq, then follows live ones, without gaps or duplicates. A consumer that leaves more
   * than `maxQueued` (default MAX_QUEUED_EVENTS) undelivered gets IO_ERROR from `next`, naming
   * the seq to resume from with `since`: its memory stays bounded, nothing is lost.
   */
  iterate(opts: { since?: number; follow?: boolean; signal?: AbortSignal; maxQueued?: number } = {}): AsyncIterableIterator<DomainEvent> {
    const queue: DomainEvent[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    let last = opts.since ?? -1;
    /** The seq of the last event `next` gave out: where to resume from (before the first one queued, if none yet). */
    let delivered = opts.since;
    let overflow: VirtkitError | undefined;
    const limit = opts.maxQueued ?? MAX_QUEUED_EVENTS;
    /** Too far behind: what it holds goes, and next() names where to resume from. */
    const drop = () => {
      overflow ??= new VirtkitError('IO_ERROR', `the event consumer fell ${limit} events behind and was dropped: resume with since ${delivered}`);
      queue.length = 0;
      finish();
    };
    const push = (e: DomainEvent) => {
      if (e.seq <= last || overflow) return;
      delivered ??= e.seq - 1;
      if (queue.length >= limit) return drop();
      last = e.seq;
      queue.push(e);
      wake?.();
    };
    const finish = () => {
      done = true;
      off();
      wake?.();
    };
    const buffered: DomainEvent[] = [];
    let replaying = opts.since !== undefined;
    // While the journal is read, live events wait here, bounded like the queue.
    const off = this.on((e) => {
      if (!replaying) return push(e);
      // (Nothing is delivered while the journal is read: `delivered` is still `since`.)
      if (buffered.length >= limit) return drop();
      buffered.push(e);
    });
    const replay = replaying
      ? this.store.eventsSince(opts.since!).then((old) => {
          for (const e of old) push(e);
          replaying = false;
          for (const e of buffered) push(e);
          if (opts.follow === false) finish();
        })
      : Promise.resolve().then(() => {
          if (opts.follow === false) finish();
        });
    opts.signal?.addEventListener('abort', finish, { once: true });
    if (opts.signal?.aborted) finish();
    const it: AsyncIterableIterator<DomainEvent> = {
      async next() {
        await replay;
        while (queue.length === 0 && !done) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        if (overflow) throw overflow;
        if (queue.length > 0) {
          const e = queue.shift()!;
          delivered = e.seq;
          return { value: e, done: false };
        }
        return { value: undefined, done: true };
      },
      async return() {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
}
