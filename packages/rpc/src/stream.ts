// Byte streams inside the multiplexed channel (feature 'streams'): the pieces both ends share.
// A stream is opened by a call (today `console`) whose result names the stream id the server
// allocated; then both sides exchange data/ack/end/close frames for that id. See README.md.
import { VirtkitError } from '@virtkit/core';

/** The feature name that enables streams (append-only FEATURES entry). */
export const STREAMS_FEATURE = 'streams';

/**
 * Bytes a side may send on a stream before the peer acknowledges them (per direction). A
 * receiver never has to hold more than this for a stream; a peer that sends more is in
 * violation (PROTOCOL_ERROR).
 */
export const STREAM_WINDOW_BYTES = 256 * 1024;

/** Largest payload of one data frame (before base64). A larger one is a PROTOCOL_ERROR. */
export const STREAM_CHUNK_BYTES = 16 * 1024;

/** Streams one session may have open at once; more are refused (OPERATION_INVALID). */
export const MAX_STREAMS_PER_SESSION = 16;

export interface DataFrame {
  t: 'data';
  s: number;
  /** The bytes, base64. */
  d: string;
}
export interface AckFrame {
  t: 'ack';
  s: number;
  /** Bytes the receiver consumed since its last ack: the sender may send that many more. */
  n: number;
}
export interface EndFrame {
  t: 'end';
  s: number;
}
export interface CloseFrame {
  t: 'close';
  s: number;
  /** Set when the stream failed (a VirtkitError code), absent for a normal close. */
  code?: string;
  message?: string;
}
export type StreamFrame = DataFrame | AckFrame | EndFrame | CloseFrame;

export const STREAM_FRAME_TYPES: ReadonlySet<string> = new Set(['data', 'ack', 'end', 'close']);

/** A sid is a positive safe integer. */
export const isStreamId = (s: unknown): s is number => typeof s === 'number' && Number.isSafeInteger(s) && s > 0;

/**
 * Decodes a data frame's payload, enforcing the chunk limit. Throws PROTOCOL_ERROR for a
 * payload that is not base64 or is larger than STREAM_CHUNK_BYTES.
 */
export function decodeData(d: unknown): Buffer {
  // base64 of STREAM_CHUNK_BYTES is at most 4 * ceil(n / 3) characters.
  if (typeof d !== 'string' || d.length > 4 * Math.ceil(STREAM_CHUNK_BYTES / 3) || !/^[A-Za-z0-9+/]*={0,2}$/.test(d) || d.length % 4 !== 0) {
    throw new VirtkitError('PROTOCOL_ERROR', `a data frame carries at most ${STREAM_CHUNK_BYTES} bytes as padded base64`);
  }
  return Buffer.from(d, 'base64');
}

/**
 * The sending half of a stream: splits bytes into data frames and sends them only within the
 * credit the peer granted (STREAM_WINDOW_BYTES at first, then what its acks return), one
 * frame at a time (each send waits for the transport to take the frame, so a full transport
 * write buffer stops it too). `end()`/`close()` are sent after the queued data.
 */
export class Outbox {
  private credit = STREAM_WINDOW_BYTES;
  private readonly queue: { buf: Buffer; done?: () => void }[] = [];
  private queuedBytes = 0;
  private flushing = false;
  private finish?: StreamFrame;
  private finished = false;
  /** Called whenever the queue empties (the source may produce again). */
  onDrain?: () => void;
  /** Called once, after the close frame went out (or the outbox was aborted). */
  onClosed?: () => void;

  constructor(
    readonly sid: number,
    private readonly send: (frame: StreamFrame) => Promise<void>,
  ) {}

  /** Bytes accepted but not yet sent (waiting for credit or the transport). */
  get pending(): number {
    return this.queuedBytes;
  }

  /** Bytes the peer allows right now. */
  get available(): number {
    return this.credit;
  }

  /**
   * Queues bytes; `done` runs once they are all handed to the transport (or at once, the bytes
   * dropped, when the stream is over: a writer is never left waiting). Returns false when the
   * caller should stop producing.
   */
  write(buf: Buffer, done?: () => void): boolean {
    if (this.finish || this.finished || this.ended) {
      done?.();
      return false;
    }
    if (buf.length > 0) {
      this.queue.push({ buf, ...(done ? { done } : {}) });
      this.queuedBytes += buf.length;
    } else done?.();
    void this.flush();
    return this.queuedBytes === 0;
  }

  /** The peer acknowledged `n` bytes. Throws PROTOCOL_ERROR if it acks more than was sent. */
  grant(n: number): void {
    if (!Number.isSafeInteger(n) || n <= 0 || this.credit + n > STREAM_WINDOW_BYTES) {
      throw new VirtkitError('PROTOCOL_ERROR', `stream ${this.sid}: ack of ${n} bytes is more than was sent`);
    }
    this.credit += n;
    void this.flush();
  }

  /** Sends `frame` (end or close) after everything queued; nothing is accepted afterwards. */
  finishWith(frame: EndFrame | CloseFrame): void {
    if (this.finished || (this.ended && frame.t === 'end')) return;
    if (this.finish) {
      // a close after a pending end replaces it (the end would be pointless)
      if (frame.t === 'close') this.finish = frame;
      return;
    }
    this.finish = frame;
    void this.flush();
  }

  /** Stops at once: queued bytes are dropped (their callbacks run, so no writer waits forever). */
  abort(): void {
    const was = this.finished;
    this.finished = true;
    const dropped = this.queue.splice(0);
    this.queuedBytes = 0;
    for (const q of dropped) q.done?.();
    if (!was) this.onClosed?.();
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (!this.finished) {
        const head = this.queue[0];
        if (head) {
          if (this.credit === 0) break;
          const n = Math.min(head.buf.length, this.credit, STREAM_CHUNK_BYTES);
          const chunk = head.buf.subarray(0, n);
          this.credit -= n;
          this.queuedBytes -= n;
          let done: (() => void) | undefined;
          if (n === head.buf.length) {
            this.queue.shift();
            done = head.done;
          } else head.buf = head.buf.subarray(n);
          await this.send({ t: 'data', s: this.sid, d: chunk.toString('base64') });
          done?.();
          if (this.queuedBytes === 0) this.onDrain?.();
          continue;
        }
        if (this.finish) {
          const f = this.finish;
          this.finish = undefined;
          if (f.t === 'end') this.ended = true;
          else this.finished = true;
          await this.send(f);
          if (f.t === 'close') this.onClosed?.();
          continue;
        }
        break;
      }
    } catch {
      // the transport failed: the session ends and takes the stream with it
      this.finished = false;
      this.abort();
    } finally {
      this.flushing = false;
    }
  }

  /** Whether the end frame went out (half-closed). */
  ended = false;
}

/**
 * The receiving half: counts bytes the peer sent against the window it was given, and acks
 * what was consumed. `receive` throws PROTOCOL_ERROR when the peer overruns the window.
 */
export class Inbox {
  private unacked = 0;
  private toAck = 0;
  constructor(
    readonly sid: number,
    private readonly sendAck: (n: number) => void,
  ) {}

  /** Bytes received and not yet acknowledged (at most what the receiver is holding). */
  get held(): number {
    return this.unacked;
  }

  receive(n: number): void {
    if (this.unacked + n > STREAM_WINDOW_BYTES) {
      throw new VirtkitError('PROTOCOL_ERROR', `stream ${this.sid}: the peer sent beyond the window of ${STREAM_WINDOW_BYTES} bytes`);
    }
    this.unacked += n;
  }

  /**
   * The consumer took `n` bytes: let the peer send that many more. Acks are batched, a
   * quarter window at a time, so small writes do not cost an ack frame each (the sender only
   * ever waits once a whole window is unacknowledged, so a quarter is always reached).
   */
  consumed(n: number): void {
    if (n <= 0) return;
    this.toAck += n;
    if (this.toAck >= STREAM_WINDOW_BYTES / 4) {
      const k = this.toAck;
      this.toAck = 0;
      this.unacked -= k;
      this.sendAck(k);
    }
  }
}

/** What a stream end does with the peer's frames (its halves handle data accounting and acks). */
export interface StreamSink {
  data(buf: Buffer): void;
  end(): void;
  /** The peer closed the stream; `error` when it failed. */
  close(error?: { code: string; message: string }): void;
}

/** Applies one frame from the peer to a stream. Throws PROTOCOL_ERROR for a violation. */
export function applyStreamFrame(m: Record<string, unknown>, out: Outbox, inbox: Inbox, sink: StreamSink): void {
  switch (m.t) {
    case 'data': {
      const buf = decodeData(m.d);
      inbox.receive(buf.length);
      sink.data(buf);
      return;
    }
    case 'ack':
      out.grant(m.n as number);
      return;
    case 'end':
      sink.end();
      return;
    case 'close':
      sink.close(typeof m.code === 'string' ? { code: m.code, message: String(m.message ?? 'the stream failed') } : undefined);
      out.abort();
      return;
  }
}
