// The API every connection offers, embedded (Connection) or through virtkitd
// (@virtkit/rpc's RemoteConnection): write management code against this type and it runs on
// either. `connect` from @virtkit/rpc returns it for any URI (test:///default,
// qemu+tls://HOST/system, qemu+unix:///system). Answers that an embedded connection has at
// hand and a remote one must ask for (capabilities, supports) may be promises: await them.
import type { Duplex } from 'node:stream';
import type { DomainConfig } from '../config/validate.js';
import type { DomainEvent, DomainInfo, DomainStatus, NodeInfo } from '../types.js';
import type { ExecOptions, ExecResult } from './exec.js';
import type { JobInfo, JobOptions } from '../jobs/jobs.js';

export interface DomainSummary {
  name: string;
  uuid?: string;
  state: DomainStatus['state'];
  reason: DomainStatus['reason'];
  persistent: boolean;
  autostart: boolean;
}

export interface Capabilities {
  uri: string;
  /** The host's WIT world version. */
  hostWorld: string;
  driver: import('../types.js').DriverDescription;
  plugin: { name: string; version: string; world: string };
}

export interface DomainConnection {
  listDomains(opts?: { all?: boolean }): Promise<DomainSummary[]>;
  /** Defines a domain, or updates the persistent config of an existing one. */
  define(doc: unknown): Promise<DomainSummary>;
  undefine(name: string): Promise<void>;
  /**
   * Lifecycle operations run as jobs. `signal` cancels one (through virtkitd too: the job stops
   * there, and the call fails with CANCELLED if it stopped in time); `onProgress` hears how far
   * it is (e.g. a slow boot).
   */
  start(name: string, opts?: JobOptions): Promise<DomainStatus>;
  /** ACPI power button (VMs) or the halt signal (containers); `timeoutMs` bounds the wait. */
  shutdown(name: string, opts?: JobOptions & { timeoutMs?: number }): Promise<DomainStatus>;
  destroy(name: string, opts?: JobOptions): Promise<DomainStatus>;
  reboot(name: string, opts?: JobOptions): Promise<DomainStatus>;
  reset(name: string, opts?: JobOptions): Promise<DomainStatus>;
  suspend(name: string, opts?: JobOptions): Promise<DomainStatus>;
  resume(name: string, opts?: JobOptions): Promise<DomainStatus>;
  info(name: string): Promise<DomainInfo & { details?: Record<string, unknown> }>;
  getConfig(name: string, opts?: { live?: boolean }): Promise<DomainConfig>;
  /** The domain's console as a byte stream. */
  console(name: string): Promise<Duplex>;
  /** `signal` stops the command (through virtkitd too). */
  exec(name: string, argv: string[], opts?: ExecOptions): Promise<ExecResult>;
  nodeInfo(): Promise<NodeInfo>;
  capabilities(): Capabilities | Promise<Capabilities>;
  /** Whether the driver implements an operation or names a feature. */
  supports(what: string): boolean | Promise<boolean>;
  setAutostart(name: string, on: boolean): Promise<void>;
  /** The jobs (lifecycle operations) queued or running on this node, in this manager (embedded) or in virtkitd (remote). */
  listJobs(): JobInfo[] | Promise<JobInfo[]>;
  /** Cancels a job by id; false when there is no such job. */
  cancelJob(id: number): boolean | Promise<boolean>;
  /** Calls `listener` for each lifecycle event; returns the function that stops it. */
  onEvent(listener: (e: DomainEvent) => void): () => void;
  /** Lifecycle events as an async iterator; `since` replays what the node kept after that seq. */
  events(opts?: { since?: number; signal?: AbortSignal }): AsyncIterableIterator<DomainEvent>;
  close(): void | Promise<void>;
}
