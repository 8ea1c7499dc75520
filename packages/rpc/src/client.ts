// The client side: a Connection-shaped object whose methods run on a remote daemon.
import { Duplex } from 'node:stream';
import { ErrorCodes, VirtkitError, type Capabilities, type DomainConfig, type DomainConnection, type DomainEvent, type DomainInfo, type DomainStatus, type DomainSummary, type ErrorCode, type ExecOptions, type ExecResult, type FieldError, type JobInfo, type JobOptions, type NodeInfo } from '@virtkit/core';
import type { RpcChannel } from './channel.js';
import { execParams, execResultOf } from './exec.js';
import { CANCEL_FEATURE, decodeFrame, sendMessage, FEATURES, isObject, PROGRESS_FEATURE, PROTOCOL_VERSIONS, SUBSCRIBE_EVENTS } from './protocol.js';
import { applyStreamFrame, Inbox, isStreamId, Outbox, STREAMS_FEATURE, type StreamFrame } from './stream.js';

/** Default interval between keepalive pings. */
export const DEFAULT_KEEPALIVE_MS = 10_000;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface RemoteOptions {
  /** Features to ask for (default: all this client knows, FEATURES). */
  features?: string[];
  /** Ping the daemon this often; no pong within two intervals closes the connection. 0 disables. Default 10 s. */
  keepaliveMs?: number;
  /** How long to wait for the daemon's welcome. Default 10 s. */
  handshakeTimeoutMs?: number;
}

interface Pending {
  method: string;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  /** Runs on the result as it arrives, before any later frame is read (a stream must exist before its data). */
  opened?(v: unknown): unknown;
  onProgress?: JobOptions['onProgress'];
}

/**
 * The client end of a stream: a Duplex like the net.Socket a local console gives. Writes are
 * sent within the daemon's credit (write() returns false and 'drain' follows, as for a
 * socket); received bytes are acknowledged once the reader takes them, so a reader that does
 * not read stops the daemon from reading its source. Ends with the session.
 */
export class RemoteStream extends Duplex {
  private readonly out: Outbox;
  private readonly in: Inbox;
  /** Bytes pushed while the readable buffer was full: acknowledged when the reader asks for more. */
  private deferred = 0;
  private remoteClosed = false;

  /** @internal opened by RemoteConnection */
  constructor(
    readonly sid: number,
    private readonly sendFrame: (f: StreamFrame) => Promise<void>,
    private readonly gone: () => void,
  ) {
    super({ allowHalfOpen: true });
    this.out = new Outbox(sid, sendFrame);
    this.in = new Inbox(sid, (n) => void sendFrame({ t: 'ack', s: sid, n }).catch(() => {}));
  }

  /** Received bytes not yet acknowledged to the daemon (at most the window). */
  get unacknowledgedBytes(): number {
    return this.in.held;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.out.write(chunk, () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.out.finishWith({ t: 'end', s: this.sid });
    cb();
  }

  override _read(): void {
    const n = this.deferred;
    this.deferred = 0;
    this.in.consumed(n);
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.out.abort();
    this.gone();
    if (!this.remoteClosed) {
      this.remoteClosed = true;
      const code = err ? (VirtkitError.is(err) ? err.code : 'IO_ERROR') : undefined;
      void this.sendFrame({ t: 'close', s: this.sid, ...(err ? { code, message: err.message } : {}) } as StreamFrame).catch(() => {});
    }
    cb(err);
  }

  /** @internal a stream frame from the daemon */
  onFrame(m: Record<string, unknown>): void {
    if (this.remoteClosed) return;
    try {
      applyStreamFrame(m, this.out, this.in, {
        data: (buf) => {
          if (this.push(buf)) this.in.consumed(buf.length);
          else this.deferred += buf.length;
        },
        end: () => this.push(null),
        close: (error) => {
          this.remoteClosed = true;
          if (error) this.destroy(new VirtkitError(asCode(error.code), error.message));
          else {
            // A normal close: what was received stays readable; then 'end', then 'close'.
            this.push(null);
            this.end();
          }
        },
      });
    } catch (e) {
      this.destroy(VirtkitError.is(e) ? e : new VirtkitError('PROTOCOL_ERROR', String(e)));
    }
  }
}

interface EventSink {
  push(e: DomainEvent): void;
  fail(e: VirtkitError): void;
}

/** Transport close codes that mean the peer broke the framing. */
const TRANSPORT_VIOLATIONS = new Set(['BAD_FRAME', 'FRAME_TOO_LARGE']);

const asCode = (c: unknown): ErrorCode => ((ErrorCodes as readonly unknown[]).includes(c) ? (c as ErrorCode) : 'INTERNAL');

/** Does the handshake on `channel` and returns the connection; refused: a VirtkitError with the daemon's reason. */
export async function openRemote(channel: RpcChannel, opts: RemoteOptions = {}): Promise<RemoteConnection> {
  const it = channel.frames[Symbol.asyncIterator]();
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  try {
    await channel.send({ t: 'hello', versions: [...PROTOCOL_VERSIONS], features: opts.features ?? [...FEATURES] });
    const first = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new VirtkitError('TIMEOUT', `the daemon did not answer the handshake within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    if (first.done) throw new VirtkitError('IO_ERROR', `connection to the daemon lost during the handshake${reasonOf(channel)}`);
    const m = first.value;
    if (isObject(m) && m.t === 'refuse') {
      throw new VirtkitError(asCode(m.code), `the daemon refused the connection: ${String(m.message)}`);
    }
    if (!isObject(m) || m.t !== 'welcome' || m.version !== 1 || !Array.isArray(m.features) || !isObject(m.node) || typeof m.node.uri !== 'string') {
      throw new VirtkitError('PROTOCOL_ERROR', 'protocol error: the daemon did not answer the hello with a welcome');
    }
    return new RemoteConnection(channel, it, { version: 1, features: m.features.filter((f): f is string => typeof f === 'string'), uri: m.node.uri }, opts);
  } catch (e) {
    channel.close();
    if (VirtkitError.is(e)) throw e;
    throw new VirtkitError('IO_ERROR', `connection to the daemon failed during the handshake: ${(e as Error).message}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
}

function reasonOf(channel: RpcChannel): string {
  const r = channel.closeReason;
  return r ? ` (${r.code}: ${r.message})` : '';
}

/**
 * A connection to a node through a daemon: the Connection methods, each a call on the wire.
 * `supports` and `capabilities` are async here (they are answered remotely).
 */
export class RemoteConnection implements DomainConnection {
  readonly version: 1;
  /** The features both sides agreed on. */
  readonly features: readonly string[];
  /** The node the daemon serves, e.g. test:///default. */
  readonly uri: string;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private sinks = new Set<EventSink>();
  private streams = new Map<number, RemoteStream>();
  private subscription?: Promise<void>;
  private seq?: number;
  private failure?: VirtkitError;
  private keepalive?: NodeJS.Timeout;
  private pingN = 0;
  private lastPong = Date.now();

  /** @internal use openRemote */
  constructor(
    private readonly channel: RpcChannel,
    private readonly it: AsyncIterator<unknown>,
    welcome: { version: 1; features: string[]; uri: string },
    opts: RemoteOptions,
  ) {
    this.version = welcome.version;
    this.features = welcome.features;
    this.uri = welcome.uri;
    const every = opts.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
    if (every > 0) {
      this.keepalive = setInterval(() => this.tick(every), every);
      this.keepalive.unref();
    }
    void this.readLoop();
  }

  /** The seq of the last event received: pass it as `since` after reconnecting to miss nothing. */
  get lastSeq(): number | undefined {
    return this.seq;
  }

  get closed(): boolean {
    return this.failure !== undefined;
  }

  private tick(every: number) {
    if (this.failure) return;
    if (Date.now() - this.lastPong > 2 * every) {
      this.fail(new VirtkitError('IO_ERROR', `connection to the daemon lost: no answer to keepalive pings for ${2 * every} ms`));
      return;
    }
    this.channel.send({ t: 'ping', n: ++this.pingN }).catch(() => {});
  }

  private async readLoop() {
    let why = '';
    try {
      for (;;) {
        const r = await this.it.next();
        if (r.done) break;
        this.onFrame(r.value);
      }
    } catch (e) {
      why = (e as Error).message;
    }
    // The transport closed because a frame could not be read: a protocol violation.
    const code = this.channel.closeReason && TRANSPORT_VIOLATIONS.has(this.channel.closeReason.code) ? 'PROTOCOL_ERROR' : 'IO_ERROR';
    this.fail(new VirtkitError(code, `connection to the daemon lost: ${why || (this.channel.closeReason ? `${this.channel.closeReason.code}: ${this.channel.closeReason.message}` : 'the channel closed')}`));
  }

  private onFrame(raw: unknown) {
    if (!isObject(raw)) return;
    const m = decodeFrame(raw) as Record<string, unknown>;
    switch (m.t) {
      case 'pong':
        this.lastPong = Date.now();
        return;
      case 'result':
      case 'error': {
        const p = typeof m.id === 'number' ? this.take(m.id) : undefined;
        if (!p) return;
        if (m.t === 'result') {
          try {
            p.resolve(p.opened ? p.opened(m.value) : m.value);
          } catch (e) {
            p.reject(e);
          }
        } else p.reject(new VirtkitError(asCode(m.code), String(m.message), Array.isArray(m.fields) ? { fields: m.fields as FieldError[] } : {}));
        return;
      }
      case 'progress': {
        const p = typeof m.id === 'number' ? this.pending.get(m.id) : undefined;
        if (p?.onProgress && typeof m.percent === 'number' && typeof m.message === 'string') {
          try {
            p.onProgress(m.percent, m.message);
          } catch {
            // a failing progress callback must not take the session down
          }
        }
        return;
      }
      case 'event': {
        const e = m.event as DomainEvent;
        if (!isObject(e) || typeof e.seq !== 'number') return;
        // Delivered once: a replay overlapping what was already seen is dropped.
        if (this.seq !== undefined && e.seq <= this.seq) return;
        this.seq = e.seq;
        for (const s of this.sinks) s.push(e);
        return;
      }
      case 'data':
      case 'ack':
      case 'end':
      case 'close':
        // Frames for a stream this side already closed are dropped.
        if (isStreamId(m.s)) this.streams.get(m.s)?.onFrame(m);
        return;
      case 'abort':
        this.fail(new VirtkitError(asCode(m.code), `the daemon ended the session: ${String(m.message)}`));
        return;
    }
  }

  /** Ends the session: pending calls and event iterators fail with `err`. */
  /** `closedHere`: close() was called, so streams end quietly (no 'error' for a caller that chose to close). */
  private fail(err: VirtkitError, closedHere = false) {
    if (this.failure) return;
    this.failure = err;
    clearInterval(this.keepalive);
    this.channel.close();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
    for (const s of [...this.sinks]) s.fail(err);
    this.sinks.clear();
    for (const st of [...this.streams.values()]) st.destroy(closedHere ? undefined : err);
    this.streams.clear();
  }

  /** Closes the connection (idempotent); calls in flight fail; open streams close (without an error). */
  close(): void {
    this.fail(new VirtkitError('OPERATION_INVALID', 'the connection is closed'), true);
  }

  /** One call on the wire. Only the daemon's method table answers; others get NO_SUPPORT. */
  call<T = unknown>(method: string, ...params: unknown[]): Promise<T> {
    return this.send<T>(method, params);
  }

  /**
   * A call with a job's options. `signal` cancels it on the daemon (feature 'cancel'): the
   * promise then settles with the daemon's answer (CANCELLED when the operation stopped in time,
   * its result when it had finished). Without the feature (an older daemon) it rejects at once
   * with CANCELLED, and the operation may go on there. `onProgress` hears the daemon's progress
   * reports (feature 'progress'). A method that runs no job (define, info) ignores the cancel:
   * the promise waits for its result.
   */
  callJob<T = unknown>(method: string, params: unknown[], opts: JobOptions = {}): Promise<T> {
    return this.send<T>(method, params, undefined, opts);
  }

  /** The call waiting for this id, no longer waiting (undefined if none: answered, or failed). */
  private take(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p) this.pending.delete(id);
    return p;
  }

  private send<T>(method: string, params: unknown[], opened?: (v: unknown) => unknown, job?: JobOptions): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const signal = job?.signal;
    if (signal?.aborted) return Promise.reject(new VirtkitError('CANCELLED', `${method} cancelled before it was sent`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const onProgress = job?.onProgress && this.features.includes(PROGRESS_FEATURE) ? job.onProgress : undefined;
      const entry: Pending = { method, resolve: resolve as (v: unknown) => void, reject };
      if (opened) entry.opened = opened;
      if (onProgress) entry.onProgress = onProgress;
      this.pending.set(id, entry);
      if (signal) {
        // Settling removes the abort listener (a call without a signal, most of them, pays nothing).
        const settle = <V>(f: (v: V) => void) => (v: V) => {
          signal.removeEventListener('abort', onAbort);
          f(v);
        };
        entry.resolve = settle(entry.resolve);
        entry.reject = settle(entry.reject);
        const onAbort = () => {
          if (!this.pending.has(id)) return;
          if (this.features.includes(CANCEL_FEATURE)) {
            sendMessage(this.channel, { t: 'cancel', id }).catch(() => {});
            return;
          }
          this.take(id)!.reject(new VirtkitError('CANCELLED', `${method} cancelled here; the daemon does not offer the "${CANCEL_FEATURE}" feature, so it may go on there`));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      sendMessage(this.channel, { t: 'call', id, method, params }).catch((e: unknown) => {
        this.take(id)?.reject(VirtkitError.is(e) ? e : new VirtkitError('IO_ERROR', `connection to the daemon lost: cannot send ${method}: ${(e as Error).message}`, { cause: e }));
      });
    });
  }

  listDomains(opts: { all?: boolean } = {}): Promise<DomainSummary[]> {
    return this.call('listDomains', opts);
  }
  define(doc: unknown): Promise<DomainSummary> {
    return this.call('define', doc);
  }
  async undefine(name: string): Promise<void> {
    await this.call('undefine', name);
  }
  /** Lifecycle calls take a job's options as the local ones do: `signal` cancels on the daemon, `onProgress` hears its reports. */
  start(name: string, opts?: JobOptions): Promise<DomainStatus> {
    return this.callJob('start', [name], opts);
  }
  shutdown(name: string, opts: JobOptions & { timeoutMs?: number } = {}): Promise<DomainStatus> {
    const { signal, onProgress, ...rest } = opts;
    return this.callJob('shutdown', [name, rest], { signal, onProgress });
  }
  destroy(name: string, opts?: JobOptions): Promise<DomainStatus> {
    return this.callJob('destroy', [name], opts);
  }
  reboot(name: string, opts?: JobOptions): Promise<DomainStatus> {
    return this.callJob('reboot', [name], opts);
  }
  reset(name: string, opts?: JobOptions): Promise<DomainStatus> {
    return this.callJob('reset', [name], opts);
  }
  suspend(name: string, opts?: JobOptions): Promise<DomainStatus> {
    return this.callJob('suspend', [name], opts);
  }
  resume(name: string, opts?: JobOptions): Promise<DomainStatus> {
    return this.callJob('resume', [name], opts);
  }
  info(name: string): Promise<DomainInfo & { details?: Record<string, unknown> }> {
    return this.call('info', name);
  }
  getConfig(name: string, opts: { live?: boolean } = {}): Promise<DomainConfig> {
    return this.call('getConfig', name, opts);
  }
  /**
   * The domain's console as a byte stream through the daemon (feature 'streams'), a Duplex as
   * the local Connection.console gives. Needs the operator permission on the domain.
   */
  console(name: string): Promise<Duplex> {
    return this.openStream('console', [name]);
  }

  /** Calls a stream-opening method; the stream exists before any of its frames is read. */
  private openStream(method: string, params: unknown[]): Promise<Duplex> {
    if (!this.failure && !this.features.includes(STREAMS_FEATURE)) {
      return Promise.reject(new VirtkitError('NO_SUPPORT', `${method} needs the "${STREAMS_FEATURE}" feature, which this connection did not negotiate`));
    }
    return this.send<Duplex>(method, params, (v) => {
      const sid = isObject(v) ? v.stream : undefined;
      if (!isStreamId(sid) || this.streams.has(sid)) throw new VirtkitError('PROTOCOL_ERROR', `protocol error: the daemon answered ${method} without a new stream id`);
      const st = new RemoteStream(sid, (f) => this.channel.send(f), () => this.streams.delete(sid));
      this.streams.set(sid, st);
      return st;
    });
  }

  /** The events the node kept after `since` (default 0), oldest first; does not follow. */
  eventsSince(since = 0): Promise<DomainEvent[]> {
    return this.call<DomainEvent[]>('eventsSince', since);
  }

  /** Runs a command inside a running domain on the daemon; bytes travel as base64. `signal` stops it there (feature 'cancel'). */
  async exec(name: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const { signal, ...rest } = opts;
    return execResultOf(await this.callJob('exec', execParams(name, argv, rest), { signal }));
  }

  async nodeInfo(): Promise<NodeInfo> {
    const n = await this.call<NodeInfo>('nodeInfo');
    // Typed arrays travel as plain arrays: give NUMA cells their declared type back.
    if (Array.isArray(n?.numa)) for (const cell of n.numa) if (Array.isArray(cell.cpus)) cell.cpus = Uint32Array.from(cell.cpus as unknown as number[]);
    return n;
  }
  capabilities(): Promise<Capabilities> {
    return this.call('capabilities');
  }
  async setAutostart(name: string, on: boolean): Promise<void> {
    await this.call('setAutostart', name, on);
  }
  supports(what: string): Promise<boolean> {
    return this.call('supports', what);
  }
  /** The node's jobs in the daemon, queued or running (every client's). */
  listJobs(): Promise<JobInfo[]> {
    return this.call('listJobs');
  }
  /** Cancels a job by id (any client's: admin in virtkitd's policy); false when there is no such job. */
  cancelJob(id: number): Promise<boolean> {
    return this.call('cancelJob', id);
  }

  /**
   * Subscribes once per connection. The first subscriber's `since` is what the daemon replays
   * from; later subscribers see events from then on.
   */
  private subscribe(since?: number): Promise<void> {
    this.subscription ??= this.call(SUBSCRIBE_EVENTS, ...(since === undefined ? [] : [since])).then(() => {});
    return this.subscription;
  }

  /** Calls `cb` for each event the daemon pushes; returns the function that stops it. */
  onEvent(cb: (e: DomainEvent) => void, opts: { since?: number } = {}): () => void {
    const sink: EventSink = {
      push: (e) => {
        try {
          cb(e);
        } catch {
          // a listener's failure is its own
        }
      },
      fail: () => {},
    };
    this.sinks.add(sink);
    this.subscribe(opts.since).catch(() => this.sinks.delete(sink));
    return () => void this.sinks.delete(sink);
  }

  /**
   * Events as an async iterator. `since` replays what the node kept after that seq (pass
   * lastSeq of a previous connection to resume). Fails with IO_ERROR when the connection is lost.
   */
  events(opts: { since?: number; signal?: AbortSignal } = {}): AsyncIterableIterator<DomainEvent> {
    const queue: DomainEvent[] = [];
    let error: VirtkitError | undefined;
    let done = false;
    let wake: (() => void) | undefined;
    const since = opts.since;
    const sink: EventSink = {
      push: (e) => {
        if (since !== undefined && e.seq <= since) return;
        queue.push(e);
        wake?.();
      },
      fail: (e) => {
        error = e;
        wake?.();
      },
    };
    const finish = () => {
      done = true;
      this.sinks.delete(sink);
      wake?.();
    };
    if (this.failure) error = this.failure;
    else this.sinks.add(sink);
    opts.signal?.addEventListener('abort', finish, { once: true });
    const ready = error ? Promise.resolve() : this.subscribe(since);
    ready.catch(() => {});
    const iter: AsyncIterableIterator<DomainEvent> = {
      next: async () => {
        await ready;
        while (queue.length === 0 && !done && !error) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        if (queue.length > 0) return { value: queue.shift()!, done: false };
        if (error && !done) {
          done = true;
          throw error;
        }
        return { value: undefined, done: true };
      },
      return: async () => {
        finish();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iter,
    };
    return iter;
  }
}
