// The virtkit remote protocol: JSON messages, one per transport frame. See README.md.
import { VirtkitError, type DomainEvent, type FieldError } from '@virtkit/core';
import type { StreamFrame } from './stream.js';

/** Protocol versions this implementation speaks, newest last. */
export const PROTOCOL_VERSIONS: readonly number[] = [1];

/**
 * Optional features a server may offer, negotiated at the handshake (the welcome carries the
 * intersection with what the client asked for). Append-only: a name, once published, keeps
 * its meaning forever; a changed behaviour gets a new name.
 */
export const FEATURES: readonly string[] = ['events-resume', 'streams', 'cancel', 'progress'];
/** The client may cancel a call in flight ({t: 'cancel', id}): the daemon aborts it (a lifecycle job, an exec) and answers it as it ends, CANCELLED when it stopped in time. */
export const CANCEL_FEATURE = 'cancel';
/** The daemon reports the progress of a long call ({t: 'progress', id, percent, message}) before its result. */
export const PROGRESS_FEATURE = 'progress';

export interface Hello {
  t: 'hello';
  versions: number[];
  features: string[];
}
export interface Welcome {
  t: 'welcome';
  version: 1;
  features: string[];
  node: { uri: string };
}
export interface Refuse {
  t: 'refuse';
  code: string;
  message: string;
}
export interface Call {
  t: 'call';
  id: number;
  method: string;
  params: unknown[];
}
export interface Result {
  t: 'result';
  id: number;
  value: unknown;
}
export interface ErrorReply {
  t: 'error';
  id: number;
  code: string;
  message: string;
  fields?: FieldError[];
}
export interface EventMessage {
  t: 'event';
  event: DomainEvent;
}
export interface Ping {
  t: 'ping';
  n: number;
}
export interface Pong {
  t: 'pong';
  n: number;
}

/** Feature 'cancel': stop call `id` (a no-op for a call already answered). */
export interface Cancel {
  t: 'cancel';
  id: number;
}
/** Feature 'progress': how far call `id` is (as a job's onProgress reports it). */
export interface Progress {
  t: 'progress';
  id: number;
  percent: number;
  message: string;
}

/** The server ends the session because the client violated the protocol (then closes). */
export interface Abort {
  t: 'abort';
  code: 'PROTOCOL_ERROR';
  message: string;
}

export type ClientMessage = Hello | Call | Cancel | Ping | StreamFrame;
export type ServerMessage = Welcome | Refuse | Result | ErrorReply | Progress | EventMessage | Pong | Abort | StreamFrame;
export type Message = ClientMessage | ServerMessage;

/** The pseudo-method that starts the event stream: params [since?]. */
export const SUBSCRIBE_EVENTS = 'events.subscribe';

const BIG = '$big';

/**
 * Makes a value JSON-safe: bigint -> {"$big": "<decimal>"}, typed arrays -> plain arrays,
 * undefined object members dropped (as JSON does). Everything else passes as JSON would.
 */
export function encodeValue(v: unknown): unknown {
  if (typeof v === 'bigint') return { [BIG]: v.toString() };
  if (v === null || typeof v !== 'object') return v;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    return Array.from(v as unknown as ArrayLike<number | bigint>, (x) => encodeValue(x));
  }
  if (Array.isArray(v)) return v.map((x) => (x === undefined ? null : encodeValue(x)));
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return encodeValue((v as { toJSON(): unknown }).toJSON());
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
    setOwn(out, k, encodeValue(x));
  }
  return out;
}

/** encodeValue's conversions, as a JSON.stringify replacer (toJSON and undefined members are JSON's own). */
function replacer(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return { [BIG]: v.toString() };
  if (v !== null && typeof v === 'object' && ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number | bigint>);
  return v;
}

/**
 * Sends one message: serialised in one JSON pass with encodeValue's conversions when the channel
 * takes JSON text (the transport's channels do), else encoded, then sent as a value.
 */
export function sendMessage(channel: { send(v: unknown): Promise<void>; sendJson?(json: string): Promise<void> }, m: unknown): Promise<void> {
  if (!channel.sendJson) return channel.send(encodeValue(m));
  let json: string;
  try {
    json = JSON.stringify(m, replacer);
  } catch (e) {
    return Promise.reject(e);
  }
  return channel.sendJson(json);
}

/** out[k] = x as an own data property, also for a key "__proto__" (which `=` would take as the prototype). */
function setOwn(out: Record<string, unknown>, k: string, x: unknown): void {
  if (k === '__proto__') Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
  else out[k] = x;
}

/**
 * Bounds on what a peer's value may make decodeValue do: parsing a bigint costs more than
 * linear time in its digits (a 16 MiB one took seconds), and a walk as deep as the value
 * overflows the stack. The API's bigints are u64 and i64 (20 digits); configs nest a few levels.
 */
export const MAX_BIG_DIGITS = 64;
export const MAX_VALUE_DEPTH = 64;

function isBig(v: object): v is { $big: string } {
  if (!Object.hasOwn(v, BIG)) return false; // most objects: no key list to build
  const keys = Object.keys(v);
  if (keys.length !== 1 || keys[0] !== BIG || typeof (v as Record<string, unknown>)[BIG] !== 'string') return false;
  const s = (v as Record<string, string>)[BIG]!;
  if (!/^-?\d+$/.test(s)) return false;
  if (s.length - (s[0] === '-' ? 1 : 0) > MAX_BIG_DIGITS) throw new VirtkitError('PROTOCOL_ERROR', `protocol error: a $big of ${s.length} characters (at most ${MAX_BIG_DIGITS} digits)`);
  return true;
}

/** The inverse of encodeValue (typed arrays come back as plain arrays). PROTOCOL_ERROR past the bounds above. */
export function decodeValue(v: unknown): unknown {
  return decode(v, 0, false);
}

/**
 * decodeValue in place, for a value fresh from a frame (the receiver's own: the transport parsed
 * it for us): bigints replace their {"$big"} objects where they stand, nothing is copied (two
 * fewer allocations per member on every call and reply). Same bounds as decodeValue.
 */
export function decodeFrame(v: unknown): unknown {
  return decode(v, 0, true);
}

function decode(v: unknown, depth: number, inPlace: boolean): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (depth >= MAX_VALUE_DEPTH) throw new VirtkitError('PROTOCOL_ERROR', `protocol error: a value nested deeper than ${MAX_VALUE_DEPTH} levels`);
  if (Array.isArray(v)) {
    const out = inPlace ? v : new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = decode(v[i], depth + 1, inPlace);
    return out;
  }
  if (isBig(v)) return BigInt(v.$big);
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = inPlace ? o : {};
  // Own data properties only; a "__proto__" key stays a plain key (JSON.parse makes it one).
  for (const k of Object.keys(o)) {
    const x = o[k];
    const y = decode(x, depth + 1, inPlace);
    if (!inPlace || y !== x) setOwn(out, k, y);
  }
  return out;
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
