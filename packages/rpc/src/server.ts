// Serves one core Connection to one peer over one channel: handshake, then calls
// multiplexed by id, an event stream, keepalive answers.
import { VirtkitError, type Connection } from '@virtkit/core';
import { decodeValue, encodeValue, FEATURES, isObject, PROTOCOL_VERSIONS, SUBSCRIBE_EVENTS, type ServerMessage } from './protocol.js';
import type { RpcChannel } from './channel.js';

export interface ServeOptions<P = unknown> {
  /**
   * Called before every call (including events.subscribe) with the peer's identity; throw
   * (e.g. a VirtkitError) to deny it. The error reaches the client; the session goes on.
   */
  authorize?(peer: P, method: string, params: readonly unknown[]): void | Promise<void>;
  /** Errors that are not VirtkitErrors: the client only learns "INTERNAL"; log them here. */
  onError?(error: unknown, method: string): void;
}

type Handler = (c: Connection, p: unknown[]) => unknown;

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
  ['start', (c, p) => c.start(str(p, 0, 'domain name'))],
  ['shutdown', (c, p) => c.shutdown(str(p, 0, 'domain name'), { timeoutMs: optNumber(opt(p, 1), 'timeoutMs') })],
  ['destroy', (c, p) => c.destroy(str(p, 0, 'domain name'))],
  ['reboot', (c, p) => c.reboot(str(p, 0, 'domain name'))],
  ['reset', (c, p) => c.reset(str(p, 0, 'domain name'))],
  ['suspend', (c, p) => c.suspend(str(p, 0, 'domain name'))],
  ['resume', (c, p) => c.resume(str(p, 0, 'domain name'))],
  ['info', (c, p) => c.info(str(p, 0, 'domain name'))],
  ['getConfig', (c, p) => c.getConfig(str(p, 0, 'domain name'), { live: opt(p, 1).live === true })],
  ['nodeInfo', (c) => c.nodeInfo()],
  ['capabilities', (c) => c.capabilities()],
  [
    'setAutostart',
    (c, p) => {
      if (typeof p[1] !== 'boolean') throw new VirtkitError('INVALID_ARGUMENT', 'parameter 2 (on) must be a boolean');
      return c.setAutostart(str(p, 0, 'domain name'), p[1]);
    },
  ],
  ['supports', (c, p) => c.supports(str(p, 0, 'operation or feature'))],
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

/** Names of the methods served (besides events.subscribe). */
export const METHOD_NAMES: readonly string[] = [...METHODS.keys()];

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
  const send = (m: ServerMessage) => channel.send(encodeValue(m)).catch(() => {});
  const stop = new AbortController();
  let subscribed = false;

  const first = await it.next().catch(() => ({ done: true as const, value: undefined }));
  if (first.done) return;
  const hello = first.value;
  if (!isObject(hello) || hello.t !== 'hello' || !Array.isArray(hello.versions)) {
    // PROTOCOL_ERROR would fit better; core has no such code yet.
    await send({ t: 'refuse', code: 'IO_ERROR', message: 'protocol error: the first message must be a hello' });
    channel.close();
    return;
  }
  const common = PROTOCOL_VERSIONS.filter((v) => (hello.versions as unknown[]).includes(v));
  if (common.length === 0) {
    await send({ t: 'refuse', code: 'NO_SUPPORT', message: `no common protocol version: the server speaks ${PROTOCOL_VERSIONS.join(', ')}, the client ${(hello.versions as unknown[]).map(String).join(', ') || 'none'}` });
    channel.close();
    return;
  }
  const asked = Array.isArray(hello.features) ? hello.features : [];
  await send({ t: 'welcome', version: 1, features: FEATURES.filter((f) => asked.includes(f)), node: { uri: conn.uri.uri } });

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
          await channel.send(encodeValue({ t: 'event', event }));
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
    try {
      const handler = method === SUBSCRIBE_EVENTS ? undefined : METHODS.get(method);
      if (method !== SUBSCRIBE_EVENTS && !handler) throw new VirtkitError('NO_SUPPORT', `unknown method ${JSON.stringify(method)}`);
      await opts.authorize?.(channel.peer, method, params);
      let value: unknown;
      if (handler) value = await handler(conn, params);
      else {
        after = await subscribe(params);
        value = { subscribed: true };
      }
      reply = { t: 'result', id, value: value === undefined ? null : value };
    } catch (e) {
      reply = errorReply(id, e, method, opts.onError);
    }
    await send(reply);
    if (after) void after();
  };

  try {
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      const m = r.value;
      if (!isObject(m)) continue;
      if (m.t === 'ping') {
        void send({ t: 'pong', n: typeof m.n === 'number' ? m.n : 0 });
      } else if (m.t === 'call') {
        if (typeof m.id !== 'number' || !Number.isSafeInteger(m.id)) continue;
        if (typeof m.method !== 'string' || !Array.isArray(m.params)) {
          void send({ t: 'error', id: m.id, code: 'INVALID_ARGUMENT', message: 'a call needs a method name and a params array' });
          continue;
        }
        void handle(m.id, m.method, decodeValue(m.params) as unknown[]);
      } else if (typeof m.id === 'number') {
        void send({ t: 'error', id: m.id, code: 'NO_SUPPORT', message: `unknown message type ${JSON.stringify(m.t)}` });
      }
    }
  } catch {
    // the channel failed: treated as closed
  } finally {
    stop.abort();
  }
}
