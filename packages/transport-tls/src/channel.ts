import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, encodeJsonFrame, FrameError, FrameReader } from './framing.js';

/** Default time a channel may go without receiving a frame before it is closed. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

/** How long close() waits for the peer to finish the TLS shutdown before destroying the socket. */
const CLOSE_GRACE_MS = 2_000;

/** Frames queued for a consumer before the socket is paused (backpressure). */
const HIGH_WATER_FRAMES = 64;
/**
 * Frames we may hold for a peer that does not read: far above what a reading peer leaves
 * pending (a stream's credit window is 16 chunks, calls in flight are bounded, one pong a ping).
 */
export const MAX_UNFLUSHED_FRAMES = 4096;

/** The output bounds a listener gives the channels of its peers (see ChannelOptions.maxBufferedBytes). */
export const serverGuards = (maxFrameBytes: number) => ({ maxBufferedBytes: 2 * maxFrameBytes, maxUnflushedFrames: MAX_UNFLUSHED_FRAMES });

/**
 * The authenticated identity of the other end: over TLS, from its (verified) certificate; over
 * a unix socket, the identity the listener was given for that socket (`transport: 'unix'`).
 */
export interface PeerIdentity {
  /** Certificate subject, e.g. `{ CN: 'client-1', O: 'example' }`; multi-valued fields are joined with ', '. */
  subject: Record<string, string>;
  /** SHA-256 fingerprint of the peer certificate, `AB:CD:...` (as node:tls reports it). */
  fingerprint256: string;
  /** Whether the certificate chain verified against the configured CA (always true on an open channel). */
  authorized: boolean;
  /** `'unix'` for a unix-socket channel (subject.CN is the socket's identity, fingerprint256 is ''); absent over TLS. */
  transport?: 'unix';
}

/**
 * Why a channel closed. Codes: FRAME_TOO_LARGE, BAD_FRAME (the side that detected the framing
 * violation, and the peer that caused it via `remote: true`), IDLE_TIMEOUT, CLOSED (close()
 * called locally), PEER_CLOSED (the peer ended the connection), or a node/OpenSSL error code
 * (ECONNRESET, ERR_SSL_...) when the connection failed.
 */
export interface CloseReason {
  code: string;
  message: string;
  /** True when the reason was reported by the peer in its close notice. */
  remote?: boolean;
}

/** Error for operations on a channel that is closed. */
export class ChannelClosedError extends Error {
  override readonly name = 'ChannelClosedError';
  readonly code = 'CHANNEL_CLOSED';
  constructor(readonly reason: CloseReason | undefined) {
    super(`CHANNEL_CLOSED: channel is closed${reason ? ` (${reason.code}: ${reason.message})` : ''}`);
  }
}

/** A mutually authenticated, framed, bidirectional message channel. */
export interface Channel {
  readonly peer: PeerIdentity;
  /** Send one JSON value as a frame. Rejects with FrameError if it cannot be encoded or is too large (the channel stays open), ChannelClosedError once closed. */
  send(value: unknown): Promise<void>;
  /** Send JSON text the caller serialised (one JSON value) as a frame; errors as send's. */
  sendJson(json: string): Promise<void>;
  /** The frames received, in order; ends when the channel closes. One consumer. */
  readonly frames: AsyncIterable<unknown>;
  /** Close gracefully (idempotent). */
  close(): void;
  readonly closed: boolean;
  /** Set once the channel has closed (or is closing because of an error). */
  readonly closeReason: CloseReason | undefined;
  on(event: 'close', listener: (reason: CloseReason) => void): this;
  once(event: 'close', listener: (reason: CloseReason) => void): this;
  off(event: 'close', listener: (reason: CloseReason) => void): this;
}

export interface ChannelOptions {
  maxFrameBytes?: number;
  /** Close the channel when no frame has been received for this long; 0 disables. Default 30 s. */
  idleTimeoutMs?: number;
  /**
   * Frames written but not yet taken by the peer, in bytes and in number, beyond which the peer
   * is deemed not to read and the channel is closed (PEER_NOT_READING). Keeps a peer that sends
   * (calls, pings) without reading the answers from growing our memory. Unbounded by default;
   * listeners (listen, listenUnix) set twice maxFrameBytes and MAX_UNFLUSHED_FRAMES: a server
   * guards itself against its peers, a client waits for its server.
   */
  maxBufferedBytes?: number;
  maxUnflushedFrames?: number;
}

/**
 * A frame `{"$close": {"code": ..., "message": ...}}` is the transport's close notice: it is
 * sent before closing on a protocol error so the peer learns why, and it is never delivered
 * to `frames`. Applications must not send objects whose only key is `$close`.
 */
const CLOSE_NOTICE_KEY = '$close';

function isCloseNotice(v: unknown): v is { $close: { code: unknown; message: unknown } } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  const inner = (v as Record<string, unknown>)[CLOSE_NOTICE_KEY];
  return keys.length === 1 && keys[0] === CLOSE_NOTICE_KEY && typeof inner === 'object' && inner !== null;
}

export function peerIdentityOf(socket: TLSSocket): PeerIdentity {
  const cert = socket.getPeerCertificate();
  const subject: Record<string, string> = {};
  const raw = (cert?.subject ?? {}) as unknown as Record<string, string | string[] | undefined>;
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined) continue;
    subject[k] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return { subject, fingerprint256: cert?.fingerprint256 ?? '', authorized: socket.authorized };
}

/**
 * A Channel over a connected stream socket (TLS after its handshake, or a plain unix socket),
 * the peer identity given by whoever established it.
 */
export class SocketChannel extends EventEmitter implements Channel {
  readonly peer: PeerIdentity;
  readonly maxFrameBytes: number;
  private readonly reader: FrameReader;
  private readonly queue: unknown[] = [];
  private waiter: ((r: IteratorResult<unknown>) => void) | undefined;
  private reason: CloseReason | undefined;
  private ended = false; // the socket has closed: no more frames
  private closing = false; // no more sends, no more frames accepted
  private idleTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly maxBufferedBytes: number;
  /**
   * Frames written and not yet flushed. Each held frame costs far more memory than its bytes
   * (a write request, a callback): a peer that sends pings or calls without reading the answers
   * is cut off past MAX_UNFLUSHED_FRAMES as well as past maxBufferedBytes. Reading is not paused
   * instead: two peers both waiting for the other to read would deadlock.
   */
  private unflushed = 0;
  private readonly maxUnflushedFrames: number;

  constructor(
    private readonly socket: Socket,
    peer: PeerIdentity,
    opts: ChannelOptions = {},
  ) {
    super();
    this.peer = peer;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? Infinity;
    this.maxUnflushedFrames = opts.maxUnflushedFrames ?? Infinity;
    this.reader = new FrameReader({ maxFrameBytes: this.maxFrameBytes });
    const idle = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    if (idle > 0) {
      this.idleTimer = setTimeout(() => {
        this.fail({ code: 'IDLE_TIMEOUT', message: `no frame received for ${idle} ms` });
      }, idle);
      this.idleTimer.unref();
    }
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.reason ??= { code: err.code ?? 'SOCKET_ERROR', message: err.message };
    });
    socket.on('end', () => {
      this.reason ??= { code: 'PEER_CLOSED', message: 'the peer closed the connection' };
    });
    socket.on('close', () => this.onClose());
    if (socket.destroyed) queueMicrotask(() => this.onClose());
  }

  get closed(): boolean {
    return this.ended || this.closing;
  }

  get closeReason(): CloseReason | undefined {
    return this.reason;
  }

  readonly frames: AsyncIterable<unknown> = {
    [Symbol.asyncIterator]: () => ({
      next: () => this.next(),
      return: async () => {
        this.close();
        return { done: true, value: undefined };
      },
    }),
  };

  send(value: unknown): Promise<void> {
    return this.write(() => encodeFrame(value, this.maxFrameBytes));
  }

  /**
   * Sends JSON text the caller serialised (one JSON value; the peer gets it parsed, as from
   * send): lets a protocol encode its own types in the one JSON pass (rpc's bigints) instead of
   * copying every value first.
   */
  sendJson(json: string): Promise<void> {
    return this.write(() => encodeJsonFrame(json, this.maxFrameBytes));
  }

  private write(encode: () => Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new ChannelClosedError(this.reason));
    let frame: Buffer;
    try {
      frame = encode();
    } catch (e) {
      return Promise.reject(e);
    }
    const queued = this.socket.writableLength;
    if ((queued > 0 && queued + frame.length > this.maxBufferedBytes) || this.unflushed >= this.maxUnflushedFrames) {
      // It would not read a close notice either: end the connection.
      this.reason ??= { code: 'PEER_NOT_READING', message: `the peer left ${this.unflushed} frames (${queued} bytes) unread (limits ${this.maxUnflushedFrames} frames, ${this.maxBufferedBytes} bytes)` };
      this.socket.destroy();
      return Promise.reject(new ChannelClosedError(this.reason));
    }
    return new Promise((resolve, reject) => {
      this.unflushed++;
      this.socket.write(frame, (err) => {
        this.unflushed--;
        if (err) reject(err);
        else resolve();
      });
    });
  }

  close(): void {
    this.shutdown({ code: 'CLOSED', message: 'closed locally' });
  }

  private next(): Promise<IteratorResult<unknown>> {
    if (this.queue.length > 0) {
      const value = this.queue.shift();
      if (this.queue.length < HIGH_WATER_FRAMES / 2 && this.socket.isPaused() && !this.closing) this.socket.resume();
      return Promise.resolve({ done: false, value });
    }
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    if (this.waiter) return Promise.reject(new Error('frames is being iterated concurrently'));
    return new Promise((resolve) => (this.waiter = resolve));
  }

  private deliver(value: unknown): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w({ done: false, value });
      return;
    }
    this.queue.push(value);
    if (this.queue.length >= HIGH_WATER_FRAMES) this.socket.pause();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    let frames: unknown[];
    try {
      frames = this.reader.push(chunk);
    } catch (e) {
      if (FrameError.is(e)) this.fail({ code: e.code, message: e.message });
      else this.fail({ code: 'BAD_FRAME', message: String(e) });
      return;
    }
    for (const f of frames) {
      if (this.closing) return;
      this.idleTimer?.refresh();
      if (isCloseNotice(f)) {
        const n = f.$close;
        this.shutdown({ code: String(n.code), message: String(n.message), remote: true });
        return;
      }
      this.deliver(f);
    }
  }

  /** Close because of a protocol problem: tell the peer why, then close. */
  private fail(reason: CloseReason): void {
    if (this.closing || this.ended) return;
    let notice: Buffer | undefined;
    try {
      notice = encodeFrame({ [CLOSE_NOTICE_KEY]: { code: reason.code, message: reason.message } });
    } catch {
      notice = undefined;
    }
    if (notice && this.socket.writable) this.socket.write(notice);
    this.shutdown(reason);
  }

  private shutdown(reason: CloseReason): void {
    if (this.closing || this.ended) return;
    this.closing = true;
    this.reason ??= reason;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.socket.end();
    this.socket.resume(); // drain (and discard) until the peer's end, so 'close' can follow
    // Do not wait forever for a peer that never completes the shutdown.
    this.graceTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.graceTimer.unref();
  }

  private onClose(): void {
    if (this.ended) return;
    this.ended = true;
    this.closing = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.reason ??= { code: 'PEER_CLOSED', message: 'the connection closed' };
    const w = this.waiter;
    this.waiter = undefined;
    // A waiting consumer means the queue is empty. Frames already queued stay readable;
    // the iterator ends after them.
    w?.({ done: true, value: undefined });
    this.emit('close', this.reason);
  }
}

/** A Channel over a TLS socket whose handshake has completed; the peer is its certificate. */
export class TlsChannel extends SocketChannel {
  constructor(socket: TLSSocket, opts: ChannelOptions = {}) {
    super(socket, peerIdentityOf(socket), opts);
  }
}

/**
 * Closes a listening server: its channels gracefully (each waits for its own close), then
 * the connections that never became channels (still handshaking), then the server itself.
 */
/**
 * A listener's new channel: tracked in `channels` while open, handed to `onChannel`; a throw
 * or rejection of the handler closes that channel only.
 */
export function adoptChannel(ch: SocketChannel, channels: Set<SocketChannel>, onChannel: (ch: Channel) => void | Promise<void>): void {
  channels.add(ch);
  ch.once('close', () => channels.delete(ch));
  try {
    const r = onChannel(ch);
    if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch(() => ch.close());
  } catch {
    ch.close();
  }
}

export async function closeServer(server: { close(cb: () => void): unknown }, channels: Iterable<Channel & { once(ev: 'close', fn: () => void): unknown }>, sockets: Iterable<Socket>): Promise<void> {
  const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
  await Promise.all(
    [...channels].map((ch) => new Promise<void>((resolve) => {
      ch.once('close', () => resolve());
      ch.close();
    })),
  );
  for (const s of sockets) s.destroy();
  await serverClosed;
}
