// The client side: a Connection-shaped object whose methods run on a remote daemon.
import { ErrorCodes, VirtkitError, type Capabilities, type DomainConfig, type DomainEvent, type DomainInfo, type DomainStatus, type DomainSummary, type ErrorCode, type FieldError, type NodeInfo } from '@virtkit/core';
import type { RpcChannel } from './channel.js';
import { decodeValue, encodeValue, FEATURES, isObject, PROTOCOL_VERSIONS, SUBSCRIBE_EVENTS } from './protocol.js';

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
}

interface EventSink {
  push(e: DomainEvent): void;
  fail(e: VirtkitError): void;
}

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
      throw new VirtkitError('IO_ERROR', 'protocol error: the daemon did not answer the hello with a welcome');
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
export class RemoteConnection {
  readonly version: 1;
  /** The features both sides agreed on. */
  readonly features: readonly string[];
  /** The node the daemon serves, e.g. test:///default. */
  readonly uri: string;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private sinks = new Set<EventSink>();
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
    this.fail(new VirtkitError('IO_ERROR', `connection to the daemon lost: ${why || (this.channel.closeReason ? `${this.channel.closeReason.code}: ${this.channel.closeReason.message}` : 'the channel closed')}`));
  }

  private onFrame(raw: unknown) {
    if (!isObject(raw)) return;
    const m = decodeValue(raw) as Record<string, unknown>;
    switch (m.t) {
      case 'pong':
        this.lastPong = Date.now();
        return;
      case 'result':
      case 'error': {
        const p = typeof m.id === 'number' ? this.pending.get(m.id) : undefined;
        if (!p) return;
        this.pending.delete(m.id as number);
        if (m.t === 'result') p.resolve(m.value);
        else p.reject(new VirtkitError(asCode(m.code), String(m.message), Array.isArray(m.fields) ? { fields: m.fields as FieldError[] } : {}));
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
    }
  }

  /** Ends the session: pending calls and event iterators fail with `err`. */
  private fail(err: VirtkitError) {
    if (this.failure) return;
    this.failure = err;
    clearInterval(this.keepalive);
    this.channel.close();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(err);
    for (const s of [...this.sinks]) s.fail(err);
    this.sinks.clear();
  }

  /** Closes the connection (idempotent); calls in flight fail. */
  close(): void {
    this.fail(new VirtkitError('OPERATION_INVALID', 'the connection is closed'));
  }

  /** One call on the wire. Only the daemon's method table answers; others get NO_SUPPORT. */
  call<T = unknown>(method: string, ...params: unknown[]): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { method, resolve: resolve as (v: unknown) => void, reject });
      this.channel.send(encodeValue({ t: 'call', id, method, params })).catch((e: unknown) => {
        if (!this.pending.delete(id)) return;
        reject(VirtkitError.is(e) ? e : new VirtkitError('IO_ERROR', `connection to the daemon lost: cannot send ${method}: ${(e as Error).message}`, { cause: e }));
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
  start(name: string): Promise<DomainStatus> {
    return this.call('start', name);
  }
  shutdown(name: string, opts: { timeoutMs?: number } = {}): Promise<DomainStatus> {
    return this.call('shutdown', name, opts);
  }
  destroy(name: string): Promise<DomainStatus> {
    return this.call('destroy', name);
  }
  reboot(name: string): Promise<DomainStatus> {
    return this.call('reboot', name);
  }
  reset(name: string): Promise<DomainStatus> {
    return this.call('reset', name);
  }
  suspend(name: string): Promise<DomainStatus> {
    return this.call('suspend', name);
  }
  resume(name: string): Promise<DomainStatus> {
    return this.call('resume', name);
  }
  info(name: string): Promise<DomainInfo & { details?: Record<string, unknown> }> {
    return this.call('info', name);
  }
  getConfig(name: string, opts: { live?: boolean } = {}): Promise<DomainConfig> {
    return this.call('getConfig', name, opts);
  }
  /** The events the node kept after `since` (default 0), oldest first; does not follow. */
  eventsSince(since = 0): Promise<DomainEvent[]> {
    return this.call<DomainEvent[]>('eventsSince', since);
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
