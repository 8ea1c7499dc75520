/**
 * Frame codec, format version 1.
 *
 * A byte stream carries a sequence of frames. Each frame is a 4-byte unsigned big-endian
 * length N followed by N bytes of UTF-8 encoded JSON (one JSON value per frame). The format
 * version is not repeated on the wire: it is fixed for a connection and the RPC layer's
 * first exchange (a later piece) names it, so a version 2 can be negotiated there.
 */

/** The frame format this module reads and writes. */
export const FRAME_FORMAT_VERSION = 1;

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;

/** Default maximum payload size of one frame: 16 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** The largest length the 4-byte prefix can express. */
const ABSOLUTE_MAX_FRAME_BYTES = 0xffff_ffff;

export type FrameErrorCode = 'FRAME_TOO_LARGE' | 'BAD_FRAME';

/** A framing violation: the stream cannot be read further (or a value cannot be sent). */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    readonly code: FrameErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }

  static is(e: unknown, code?: FrameErrorCode): e is FrameError {
    return e instanceof FrameError && (code === undefined || e.code === code);
  }
}

function checkMax(max: number): number {
  if (!Number.isInteger(max) || max < 1 || max > ABSOLUTE_MAX_FRAME_BYTES) {
    throw new RangeError(`maxFrameBytes must be an integer in [1, ${ABSOLUTE_MAX_FRAME_BYTES}], got ${max}`);
  }
  return max;
}

/** Encode one value as a frame. Throws FrameError if it is not JSON-serialisable or too large. */
export function encodeFrame(value: unknown, maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES): Buffer {
  checkMax(maxFrameBytes);
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    throw new FrameError('BAD_FRAME', `value is not JSON-serialisable: ${(e as Error).message}`);
  }
  if (json === undefined) throw new FrameError('BAD_FRAME', 'value is not JSON-serialisable');
  return encodeJsonFrame(json, maxFrameBytes);
}

/** A frame of JSON text the caller made (it must be one JSON value: the reader parses it). */
export function encodeJsonFrame(json: string, maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES): Buffer {
  checkMax(maxFrameBytes);
  const payloadBytes = Buffer.byteLength(json, 'utf8');
  if (payloadBytes > maxFrameBytes) {
    throw new FrameError('FRAME_TOO_LARGE', `frame of ${payloadBytes} bytes exceeds the maximum of ${maxFrameBytes}`);
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadBytes);
  frame.writeUInt32BE(payloadBytes, 0);
  frame.write(json, FRAME_HEADER_BYTES, 'utf8');
  return frame;
}

export interface FrameReaderOptions {
  /** Largest accepted payload; a larger declared length fails before any of it is buffered. */
  maxFrameBytes?: number;
}

/**
 * Incremental decoder: push chunks as they arrive, get back the frames they complete.
 * Chunks may split or merge frames arbitrarily. After a FrameError the reader is failed:
 * every later push throws the same error (the stream has lost its framing).
 */
export class FrameReader {
  readonly maxFrameBytes: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Payload length of the frame being read, once its header is complete. */
  private expected: number | undefined;
  private failed: FrameError | undefined;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  constructor(opts: FrameReaderOptions = {}) {
    this.maxFrameBytes = checkMax(opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
  }

  /** Bytes received but not yet part of a returned frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feed a chunk; returns the frames (decoded JSON values) it completes, in order. */
  push(chunk: Uint8Array): unknown[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      this.buffered += chunk.length;
    }
    const frames: unknown[] = [];
    try {
      for (;;) {
        if (this.expected === undefined) {
          if (this.buffered < FRAME_HEADER_BYTES) break;
          const len = this.take(FRAME_HEADER_BYTES).readUInt32BE(0);
          if (len > this.maxFrameBytes) {
            throw new FrameError('FRAME_TOO_LARGE', `peer declared a frame of ${len} bytes, the maximum is ${this.maxFrameBytes}`);
          }
          this.expected = len;
        }
        if (this.buffered < this.expected) break;
        const payload = this.take(this.expected);
        this.expected = undefined;
        frames.push(this.decode(payload));
      }
    } catch (e) {
      this.failed = e as FrameError;
      this.chunks = [];
      this.buffered = 0;
      throw e;
    }
    return frames;
  }

  private decode(payload: Buffer): unknown {
    let text: string;
    try {
      text = this.decoder.decode(payload);
    } catch {
      throw new FrameError('BAD_FRAME', 'frame payload is not valid UTF-8');
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new FrameError('BAD_FRAME', `frame payload of ${payload.length} bytes is not valid JSON`);
    }
  }

  /** Remove and return the first n buffered bytes (n <= buffered). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) {
      this.buffered -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const used = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, used);
      filled += used;
      if (used === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(used);
    }
    this.buffered -= n;
    return out;
  }
}
