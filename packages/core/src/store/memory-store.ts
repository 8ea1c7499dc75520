import { VirtkitError } from '../errors.js';
import type { DomainEvent, DomainStatus, StoredDomain } from '../types.js';
import { InProcessLock } from './atomic.js';
import type { StateStore } from './store.js';

/** Journal bound shared by both stores: past MAX events, keep only the newest KEEP. */
export const JOURNAL_MAX_EVENTS = 10_000;
export const JOURNAL_KEEP_EVENTS = 5_000;

/** Code-unit order, so both stores (and every locale) list domains identically. */
export const byName = (a: StoredDomain, b: StoredDomain) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Volatile store for per-connection nodes. Everything goes in and out through
 * structuredClone, so callers never share objects with the store (or with each other).
 */
export class MemoryStore implements StateStore {
  readonly #domains = new Map<string, StoredDomain>();
  #events: DomainEvent[] = [];
  #seq = 0;
  // Mutators take the lock too, so a caller's read-modify-write inside withLock is not
  // interleaved with another caller's plain put, exactly as with the file store.
  readonly #lock = new InProcessLock();

  async listDomains(): Promise<StoredDomain[]> {
    return [...this.#domains.values()].map((d) => structuredClone(d)).sort(byName);
  }

  async getDomain(name: string): Promise<StoredDomain | undefined> {
    const d = this.#domains.get(name);
    return d && structuredClone(d);
  }

  /** No copy (~3 µs a call saved for info): the stored objects are replaced, never changed in place. */
  async peekDomain(name: string): Promise<Readonly<StoredDomain> | undefined> {
    return this.#domains.get(name);
  }

  putConfig(name: string, config: Record<string, unknown>): Promise<void> {
    return this.#lock.run(async () => {
      const old = this.#domains.get(name);
      const status: DomainStatus = old?.status ?? { state: 'shut-off', reason: 'unknown' };
      this.#domains.set(name, { ...old, name, config: structuredClone(config), status });
    });
  }

  putRuntime(name: string, status: DomainStatus, runtime: string | undefined, liveConfig?: Record<string, unknown>): Promise<void> {
    return this.#lock.run(async () => {
      const old = this.#domains.get(name);
      if (!old) throw noDomain(name);
      const { runtime: _dropped, liveConfig: _live, pending: _pending, ...rest } = old;
      this.#domains.set(name, {
        ...rest,
        status: structuredClone(status),
        ...(runtime === undefined ? {} : { runtime }),
        ...(liveConfig === undefined ? {} : { liveConfig: structuredClone(liveConfig) }),
      });
    });
  }

  async findByUuid(uuid: string): Promise<StoredDomain | undefined> {
    for (const d of this.#domains.values()) if (d.config.uuid === uuid) return structuredClone(d);
    return undefined;
  }

  putPending(name: string, pending: StoredDomain['pending']): Promise<void> {
    return this.#lock.run(async () => {
      const old = this.#domains.get(name);
      if (!old) throw noDomain(name);
      const { pending: _p, ...rest } = old;
      this.#domains.set(name, pending ? { ...rest, pending: structuredClone(pending) } : rest);
    });
  }

  putAutostart(name: string, on: boolean): Promise<void> {
    return this.#lock.run(async () => {
      const old = this.#domains.get(name);
      if (!old) throw noDomain(name);
      const { autostart: _a, ...rest } = old;
      this.#domains.set(name, on ? { ...rest, autostart: true } : rest);
    });
  }

  removeDomain(name: string): Promise<void> {
    return this.#lock.run(async () => {
      this.#domains.delete(name);
    });
  }

  appendEvent(event: Omit<DomainEvent, 'seq'>): Promise<DomainEvent> {
    return this.#lock.run(async () => {
      const stored: DomainEvent = { ...structuredClone(event), seq: ++this.#seq };
      this.#events.push(stored);
      if (this.#events.length > JOURNAL_MAX_EVENTS) this.#events = this.#events.slice(-JOURNAL_KEEP_EVENTS);
      return structuredClone(stored);
    });
  }

  async eventsSince(after: number): Promise<DomainEvent[]> {
    return this.#events.filter((e) => e.seq > after).map((e) => structuredClone(e));
  }

  async lastSeq(): Promise<number> {
    return this.#seq;
  }

  withLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(fn);
  }

  async close(): Promise<void> {
    await this.#lock.drain();
  }
}

/** putRuntime on a domain that was never defined: there is no config to attach it to. */
export function noDomain(name: string): VirtkitError {
  return new VirtkitError('NO_DOMAIN', `domain '${name}' not found`);
}
