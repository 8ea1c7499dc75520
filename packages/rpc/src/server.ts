// Serves one core Connection to one peer over one channel: handshake, then calls
// multiplexed by id, an event stream, keepalive answers.
import type { Duplex } from 'node:stream';
import { VirtkitError, type Connection, type JobOptions } from '@virtkit/core';
import { CANCEL_FEATURE, decodeFrame, sendMessage, FEATURES, isObject, PROGRESS_FEATURE, PROTOCOL_VERSIONS, SUBSCRIBE_EVENTS, type ServerMessage } from './protocol.js';
import type { RpcChannel } from './channel.js';
import { serveExec } from './exec.js';
import { applyStreamFrame, Inbox, isStreamId, MAX_STREAMS_PER_SESSION, Outbox, STREAM_FRAME_TYPES, STREAMS_FEATURE, type StreamFrame } from './stream.js';

export interface ServeOptions<P = unknown> {
  /**
   * Called before every call (including events.subscribe) with the peer's identity; throw
   * (e.g. a VirtkitError) to deny it. The error reaches the client; the session goes on.
   */
  authorize?(peer: P, method: string, params: readonly unknown[]): void | Promise<void>;
  /** Errors that are not VirtkitErrors: the client only learns "INTERNAL"; log them here. */
  onError?(error: unknown, method: string): void;
  /**
   * A stream opened (after the result went out) or ended, for audit logs. `reason`: `peer-closed`,
   * `source-closed` (e.g. the domain stopped), `session-ended`, or an error code.
   */
  onStream?(e: { event: 'open' | 'closed'; stream: number; method: string; params: readonly unknown[]; reason?: string }): void;
  /**
   * Calls one session may have in flight (default DEFAULT_MAX_CALLS_IN_FLIGHT); one more is
   * answered at once with OPERATION_INVALID, and the session goes on. Bounds what one client
   * can make the daemon hold (each call: its params, a job or a driver operation).
   */
  maxCallsInFlight?: number;
}

export const DEFAULT_MAX_CALLS_IN_FLIGHT = 64;

/**
 * One call being served. `signal` is aborted when the client cancels the call (feature
 * 'cancel') or its session ends: what a long call (a lifecycle job, an exec) stops for. It is
 * made on first use: most calls (info, listings) never look.
 */
export class ServedCall {
  #ac?: AbortController;
  #reason?: VirtkitError;
  constructor(
    readonly id: number,
    readonly method: string,
    private readonly onProgress?: (id: number, percent: number, message: string) => void,
  ) {}
  get signal(): AbortSignal {
    if (!this.#ac) {
      this.#ac = new AbortController();
      if (this.#reason) this.#ac.abort(this.#reason);
    }
    return this.#ac.signal;
  }
  cancel(reason: VirtkitError): void {
    if (this.#reason) return;
    this.#reason = reason;
    this.#ac?.abort(reason);
  }
  /** Progress to the client (feature 'progress'; nothing without it). */
  progress(percent: number, message: string): void {
    this.onProgress?.(this.id, percent, message);
  }
  /** A lifecycle job's options: cancelled with the call, progress to the client. */
  get job(): JobOptions {
    return { signal: this.signal, ...(this.onProgress ? { onProgress: (p: number, m: string) => this.progress(p, m) } : {}) };
  }
}

type Handler = (c: Connection, p: unknown[], call: ServedCall) => unknown;

/**
 * Calls that stop when their session ends: an exec's output has nowhere to go. Lifecycle jobs
 * go on, as libvirt's and Incus's do when their client goes away: a dropped connection must not
 * leave a start half done. Only an explicit cancel stops them.
 */
const ENDS_WITH_SESSION: ReadonlySet<string> = new Set(['exec']);

const str = (p: unknown[], i: number, what: string): string => {
  const v = p[i];
  if (typeof v !== 'string') throw new VirtkitError('INVALID_ARGUMENT', `parameter ${i + 1} (${what}) must be a string`);
  return v;
};
const opt = (p: unknown[], i: number): Record<string, unknown> => {
  const v = p[i];
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new VirtkitError('INVALID_ARGUMENT', `parameter ${i + 1} must be an object`);
  return v;
};
const optNumber = (o: Record<string, unknown>, k: string): number | undefined => {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new VirtkitError('INVALID_ARGUMENT', `${k} must be a non-negative number`);
  return v;
};

/** The only methods a peer can reach: an explicit table, never property lookups on Connection. */
const METHODS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ['listDomains', (c, p) => c.listDomains({ all: opt(p, 0).all === true })],
  ['define', (c, p) => c.define(p[0])],
  ['undefine', (c, p) => c.undefine(str(p, 0, 'domain name'))],
  ['start', (c, p, x) => c.start(str(p, 0, 'domain name'), x.job)],
  ['shutdown', (c, p, x) => c.shutdown(str(p, 0, 'domain name'), { timeoutMs: optNumber(opt(p, 1), 'timeoutMs'), ...x.job })],
  ['destroy', (c, p, x) => c.destroy(str(p, 0, 'domain name'), x.job)],
  ['reboot', (c, p, x) => c.reboot(str(p, 0, 'domain name'), x.job)],
  ['reset', (c, p, x) => c.reset(str(p, 0, 'domain name'), x.job)],
  ['suspend', (c, p, x) => c.suspend(str(p, 0, 'domain name'), x.job)],
  ['resume', (c, p, x) => c.resume(str(p, 0, 'domain name'), x.job)],
  ['info', (c, p) => c.info(str(p, 0, 'domain name'))],
  ['getConfig', (c, p) => c.getConfig(str(p, 0, 'domain name'), { live: opt(p, 1).live === true })],
  ['nodeInfo', (c) => c.nodeInfo()],
  ['exec', serveExec],
  ['capabilities', (c) => c.capabilities()],
  [
    'setAutostart',
    (c, p) => {
      if (typeof p[1] !== 'boolean') throw new VirtkitError('INVALID_ARGUMENT', 'parameter 2 (on) must be a boolean');
      return c.setAutostart(str(p, 0, 'domain name'), p[1]);
    },
  ],
  ['supports', (c, p) => c.supports(str(p, 0, 'operation or feature'))],
  ['listJobs', (c) => c.listJobs()],
  [
    'cancelJob',
    (c, p) => {
      if (typeof p[0] !== 'number' || !Number.isSafeInteger(p[0])) throw new VirtkitError('INVALID_ARGUMENT', 'parameter 1 (job id) must be an integer');
      return c.cancelJob(p[0]);
    },
  ],
  // What the node kept after a seq, then done (events.subscribe follows instead).
  [
    'eventsSince',
    async (c, p) => {
      const since = p[0] === undefined ? 0 : p[0];
      if (typeof since !== 'number' || !Number.isInteger(since) || since < 0) throw new VirtkitError('INVALID_ARGUMENT', 'parameter 1 (since) must be an integer >= 0');
      const out = [];
      for await (const e of c.events({ since, follow: false })) out.push(e);
      return out;
    },
  ],
]);

/**
 * Methods that open a byte stream (feature 'streams'): the result is `{stream: sid}`, then the
 * bytes flow as stream frames. Volume upload/download will join console here.
 */
const STREAM_METHODS: ReadonlyMap<string, (c: Connection, p: unknown[]) => Promise<Duplex>> = new Map([
  ['console', (c: Connection, p: unknown[]) => c.console(str(p, 0, 'domain name'))],
]);

/** Names of the methods served (besides events.subscribe), stream openers included. */
export const METHOD_NAMES: readonly string[] = [...METHODS.keys(), ...STREAM_METHODS.keys()];

/** One open stream of a session: the local end (e.g. the console socket) and its two halves on the wire. */
interface ServedStream {
  sid: number;
  source: Duplex;
  out: Outbox;
  in: Inbox;
  /** Set when the peer closed it or it was failed: frames for it are ignored from then on. */
  gone: boolean;
  /** Why it ended, for onStream. */
  reason?: string;
}

function errorReply(id: number, e: unknown, method: string, onError: ServeOptions['onError']): ServerMessage {
  if (VirtkitError.is(e)) return { t: 'error', id, code: e.code, message: e.message, ...(e.fields ? { fields: e.fields } : {}) };
  try {
    onError?.(e, method);
  } catch {
    // a failing logger must not take the session down
  }
  return { t: 'error', id, code: 'INTERNAL', message: `internal error while handling ${method}` };
}

/**
 * Serves `conn` on `channel` until the channel closes (the returned promise then resolves).
 * The first frame must be a hello; a peer with no common version is refused and closed.
 * `conn` stays open: one Connection may serve many channels.
 */
export async function serveConnection<C extends RpcChannel>(channel: C, conn: Connection, opts: ServeOptions<C['peer']> = {}): Promise<void> {
  const it = channel.frames[Symbol.asyncIterator]();
  const send = (m: ServerMessage) => sendMessage(channel, m).catch(() => {});
  const stop = new AbortController();
  let subscribed = false;
  const streams = new Map<number, ServedStream>();
  let lastSid = 0;
  let opening = 0;
  /** A violation that ends the session: tell the peer why, then close. */
  const abort = async (message: string) => {
    await send({ t: 'abort', code: 'PROTOCOL_ERROR', message: `protocol error: ${message}` });
    channel.close();
  };

  const first = await it.next().catch(() => ({ done: true as const, value: undefined }));
  if (first.done) return;
  const hello = first.value;
  if (!isObject(hello) || hello.t !== 'hello' || !Array.isArray(hello.versions)) {
    await send({ t: 'refuse', code: 'PROTOCOL_ERROR', message: 'protocol error: the first message must be a hello' });
    channel.close();
    return;
  }
  const common = PROTOCOL_VERSIONS.filter((v) => (hello.versions as unknown[]).includes(v));
  if (common.length === 0) {
    // Only numbers are named back (a nested array's String() could overflow the stack).
    const theirs = (hello.versions as unknown[]).filter((v): v is number => typeof v === 'number').slice(0, 8);
    await send({ t: 'refuse', code: 'NO_SUPPORT', message: `no common protocol version: the server speaks ${PROTOCOL_VERSIONS.join(', ')}, the client ${theirs.join(', ') || 'none it could name'}` });
    channel.close();
    return;
  }
  const asked = Array.isArray(hello.features) ? hello.features : [];
  const agreed = FEATURES.filter((f) => asked.includes(f));
  const streamsOn = agreed.includes(STREAMS_FEATURE);
  const cancelOn = agreed.includes(CANCEL_FEATURE);
  const onProgress = agreed.includes(PROGRESS_FEATURE) ? (id: number, percent: number, message: string) => void send({ t: 'progress', id, percent, message }) : undefined;
  /** Calls in flight, by id: what a cancel (or the session's end) aborts. */
  const inflight = new Map<number, ServedCall>();
  const maxCalls = opts.maxCallsInFlight ?? DEFAULT_MAX_CALLS_IN_FLIGHT;
  await send({ t: 'welcome', version: 1, features: agreed, node: { uri: conn.uri.uri } });

  const sendStream = (f: StreamFrame) => channel.send(f);
  /** Fails a stream at once (queued bytes dropped): the close frame carries the error. */
  const failStream = (st: ServedStream, error: { code: string; message: string }) => {
    st.gone = true;
    st.reason = error.code;
    st.out.abort();
    void sendStream({ t: 'close', s: st.sid, ...error }).catch(() => {});
  };
  const notify = (e: Parameters<NonNullable<ServeOptions['onStream']>>[0]) => {
    try {
      opts.onStream?.(e);
    } catch {
      // a failing logger must not take the session down
    }
  };
  /** Registers an opened source under a new sid; its bytes flow once `start` is called (after the result went out). */
  const attach = (source: Duplex, method: string, params: unknown[]): { sid: number; start: () => Promise<void> } => {
    const sid = ++lastSid;
    source.pause();
    let failure: Error | undefined;
    source.on('error', (e: Error) => (failure = e));
    const st: ServedStream = { sid, source, out: new Outbox(sid, sendStream), in: new Inbox(sid, (n) => void sendStream({ t: 'ack', s: sid, n }).catch(() => {})), gone: false };
    st.out.onClosed = () => {
      // the close went out, or the frames could not be sent: either way the source is done
      streams.delete(sid);
      source.destroy();
      notify({ event: 'closed', stream: sid, method, params, reason: st.reason ?? 'session-ended' });
    };
    streams.set(sid, st);
    const start = async () => {
      notify({ event: 'open', stream: sid, method, params });
      // Flow control: the source is read only while the peer has credit (see Outbox).
      st.out.onDrain = () => {
        if (!st.gone) source.resume();
      };
      source.on('data', (b: Buffer) => {
        if (!st.out.write(b)) source.pause();
      });
      source.on('end', () => st.out.finishWith({ t: 'end', s: sid }));
      const closed = () => {
        if (st.gone) return;
        st.gone = true;
        st.reason = failure ? 'IO_ERROR' : 'source-closed';
        st.out.finishWith({ t: 'close', s: sid, ...(failure ? { code: 'IO_ERROR', message: `stream ${sid}: ${failure.message}` } : {}) });
      };
      if (source.destroyed) closed();
      else {
        source.on('close', closed);
        source.resume();
      }
    };
    return { sid, start };
  };
  /** A stream frame from the peer. Frames for streams that were closed are dropped; ids never allocated are a violation. */
  const onStreamFrame = (m: Record<string, unknown>) => {
    const sid = m.s;
    if (!isStreamId(sid)) return void abort(`a ${String(m.t)} frame needs a stream id`);
    const st = streams.get(sid);
    if (!st) {
      if (!streamsOn || sid > lastSid) void sendStream({ t: 'close', s: sid, code: 'PROTOCOL_ERROR', message: `protocol error: no stream ${sid}${streamsOn ? '' : ' (streams were not negotiated)'}` }).catch(() => {});
      return;
    }
    if (st.gone) {
      // Closed on this side, its close frame still queued behind data: acks still release it.
      if (m.t === 'ack' || m.t === 'close') {
        try {
          if (m.t === 'ack') st.out.grant(m.n as number);
          else st.out.abort();
        } catch (e) {
          failStream(st, { code: 'PROTOCOL_ERROR', message: `protocol error: ${(e as Error).message}` });
        }
      }
      return;
    }
    try {
      applyStreamFrame(m, st.out, st.in, {
        data: (buf) => st.source.write(buf, () => st.in.consumed(buf.length)),
        end: () => st.source.end(),
        // The peer is done: stop at once (queued bytes were dropped), answer nothing.
        close: () => {
          st.gone = true;
          st.reason = 'peer-closed';
          st.source.destroy();
        },
      });
    } catch (e) {
      const err = VirtkitError.is(e) ? e : new VirtkitError('PROTOCOL_ERROR', String(e));
      st.source.destroy();
      failStream(st, { code: err.code, message: `protocol error: ${err.message}` });
    }
  };

  const subscribe = async (params: unknown[]) => {
    if (subscribed) throw new VirtkitError('OPERATION_INVALID', 'events are already subscribed on this connection');
    const since = params[0];
    if (since !== undefined && since !== null && (typeof since !== 'number' || !Number.isInteger(since))) {
      throw new VirtkitError('INVALID_ARGUMENT', 'parameter 1 (since) must be an integer seq');
    }
    subscribed = true;
    // Listening starts now (nothing is missed); the frames follow the result, in seq order.
    const events = conn.events({ since: typeof since === 'number' ? since : undefined, signal: stop.signal });
    const pump = async () => {
      try {
        for await (const event of events) {
          if (stop.signal.aborted) break;
          await sendMessage(channel, { t: 'event', event });
        }
      } catch {
        channel.close();
      }
    };
    return pump;
  };

  const handle = async (id: number, method: string, params: unknown[]) => {
    let reply: ServerMessage;
    let after: (() => Promise<void>) | undefined;
    let reserved = false;
    const call = new ServedCall(id, method, onProgress);
    inflight.set(id, call);
    try {
      const handler = method === SUBSCRIBE_EVENTS ? undefined : METHODS.get(method);
      const opener = STREAM_METHODS.get(method);
      if (method !== SUBSCRIBE_EVENTS && !handler && !opener) throw new VirtkitError('NO_SUPPORT', `unknown method ${JSON.stringify(method.length > 64 ? `${method.slice(0, 64)}...` : method)}`);
      if (opener) {
        if (!streamsOn) throw new VirtkitError('PROTOCOL_ERROR', `protocol error: ${method} opens a stream, and the "${STREAMS_FEATURE}" feature was not negotiated`);
        if (streams.size + opening >= MAX_STREAMS_PER_SESSION) throw new VirtkitError('OPERATION_INVALID', `at most ${MAX_STREAMS_PER_SESSION} streams may be open on one connection`);
        opening++;
        reserved = true;
      }
      // A synchronous hook (virtkitd's) is not awaited: one promise and turn less per call.
      const allowed = opts.authorize?.(channel.peer, method, params);
      if (allowed) await allowed;
      let value: unknown;
      if (handler) value = await handler(conn, params, call);
      else if (opener) {
        const source = await opener(conn, params);
        if (stop.signal.aborted) {
          source.destroy();
          throw new VirtkitError('IO_ERROR', 'the session ended while the stream was opening');
        }
        const { sid, start } = attach(source, method, params);
        value = { stream: sid };
        after = start;
      } else {
        after = await subscribe(params);
        value = { subscribed: true };
      }
      reply = { t: 'result', id, value: value === undefined ? null : value };
    } catch (e) {
      reply = errorReply(id, e, method, opts.onError);
    } finally {
      if (reserved) opening--;
    }
    try {
      await sendMessage(channel, reply);
    } catch (e) {
      // A reply that cannot be framed (over the maximum frame size, e.g. an exec's large
      // output) must not leave the call waiting forever: say so, in a frame that fits.
      if ((e as { code?: unknown }).code === 'FRAME_TOO_LARGE') {
        await send({ t: 'error', id, code: 'IO_ERROR', message: `the reply to ${method} does not fit in one frame (${(e as Error).message}); ask for less (e.g. a smaller output bound) or raise the maximum frame size` });
      }
    } finally {
      // Counted until its reply is written: a peer that does not read its answers cannot
      // pile up more than maxCallsInFlight of them.
      if (inflight.get(id) === call) inflight.delete(id);
    }
    if (after) void after();
  };

  try {
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      const m = r.value;
      if (!isObject(m)) {
        await abort('a message must be a JSON object');
        break;
      }
      if (m.t === 'ping') {
        void send({ t: 'pong', n: typeof m.n === 'number' ? m.n : 0 });
      } else if (m.t === 'call') {
        if (typeof m.id !== 'number' || !Number.isSafeInteger(m.id)) {
          await abort('a call needs an integer id');
          break;
        }
        if (typeof m.method !== 'string' || !Array.isArray(m.params)) {
          void send({ t: 'error', id: m.id, code: 'INVALID_ARGUMENT', message: 'a call needs a method name and a params array' });
          continue;
        }
        if (inflight.has(m.id)) {
          // Its answer, and a cancel, could only reach one of the two.
          await abort(`call id ${m.id} is already in flight`);
          break;
        }
        if (inflight.size >= maxCalls) {
          void send({ t: 'error', id: m.id, code: 'OPERATION_INVALID', message: `at most ${maxCalls} calls may be in flight on one connection: wait for some to finish` });
          continue;
        }
        let params: unknown[];
        try {
          params = decodeFrame(m.params) as unknown[];
        } catch (e) {
          await abort((e as Error).message.replace(/^protocol error: /, ''));
          break;
        }
        void handle(m.id, m.method, params);
      } else if (m.t === 'cancel') {
        if (!cancelOn) {
          await abort(`a cancel needs the "${CANCEL_FEATURE}" feature, which was not negotiated`);
          break;
        }
        if (typeof m.id !== 'number' || !Number.isSafeInteger(m.id)) {
          await abort('a cancel needs an integer id');
          break;
        }
        // A call already answered (the cancel crossed its result): nothing to do.
        inflight.get(m.id)?.cancel(new VirtkitError('CANCELLED', 'cancelled by the client'));
      } else if (typeof m.t === 'string' && STREAM_FRAME_TYPES.has(m.t)) {
        onStreamFrame(m);
      } else {
        await abort(`unknown message type ${JSON.stringify(m.t)}`);
        break;
      }
    }
  } catch {
    // the channel failed: treated as closed
  } finally {
    // However the session ended, the connection goes with it (a session that stopped reading
    // must not leave its socket open).
    channel.close();
    stop.abort();
    for (const call of inflight.values()) if (ENDS_WITH_SESSION.has(call.method)) call.cancel(new VirtkitError('CANCELLED', 'the client went away'));
    inflight.clear();
    // Streams end with the session: their sources (console sockets) are closed now.
    for (const st of streams.values()) {
      st.gone = true;
      st.out.abort();
      st.source.destroy();
    }
    streams.clear();
  }
}
