import type { DomainEvent, DomainStatus, StoredDomain } from '../types.js';

/**
 * Where a node's durable state lives: persistent definitions, runtime records and the
 * event journal. A memory store backs per-connection nodes (test:///default); a file
 * store backs real nodes, with atomic writes and a cross-process lock.
 */
export interface StateStore {
  listDomains(): Promise<StoredDomain[]>;
  getDomain(name: string): Promise<StoredDomain | undefined>;
  /** As getDomain, but the object may be the store's own (no copy): the caller only reads it. */
  peekDomain(name: string): Promise<Readonly<StoredDomain> | undefined>;
  /** The domain with this uuid, if any. */
  findByUuid(uuid: string): Promise<StoredDomain | undefined>;
  /** Create or replace the persistent config; a new domain starts shut off. */
  putConfig(name: string, config: Record<string, unknown>): Promise<void>;
  /**
   * Record the domain's status and runtime record (undefined drops the record), and the
   * config it runs with (undefined drops it).
   */
  putRuntime(name: string, status: DomainStatus, runtime: string | undefined, liveConfig?: Record<string, unknown>): Promise<void>;
  removeDomain(name: string): Promise<void>;
  /** Mark (or clear) an operation in flight on the domain. putRuntime clears it too. */
  putPending(name: string, pending: StoredDomain['pending']): Promise<void>;
  /** Set or clear the domain's autostart flag. */
  putAutostart(name: string, on: boolean): Promise<void>;
  /** Number and persist an event; seq is monotonic per store and survives reopening. */
  appendEvent(event: Omit<DomainEvent, 'seq'>): Promise<DomainEvent>;
  /** Events with seq > after, oldest first (as far back as the journal keeps them). */
  eventsSince(after: number): Promise<DomainEvent[]>;
  /** The last seq handed out (0 when none). */
  lastSeq(): Promise<number>;
  /** Run fn holding the store's lock: other processes on the same store wait. */
  withLock<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
