// Streams (feature 'streams') over real mutual TLS, with a stand-in Connection whose console is
// a real unix socket to a local "guest" (an echoing one, and a fast one that writes 4 MiB as
// fast as it can); and the protocol violations (PROTOCOL_ERROR) over an in-memory pair.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtkitError, type Connection } from '@virtkit/core';
import { connect as dialTls, initCa, issueClient, issueServer, listen, type Channel, type Listener } from '@virtkit/transport-tls';
import { openRemote, serveConnection, STREAM_CHUNK_BYTES, STREAM_WINDOW_BYTES, type RemoteConnection, type RemoteStream, type ServeOptions } from '../src/index.js';
import { pair } from './mem.js';

const tmp = mkdtempSync(join(tmpdir(), 'vk-streams-'));
const pki = join(tmp, 'pki');
const FAST_BYTES = 4 * 1024 * 1024;

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const pattern = (i: number) => (i * 7 + (i >> 11)) & 0xff;

/** A unix-socket server standing in for a guest's console. */
function guestServer(path: string, onConn: (s: Socket) => void): Promise<Server> {
  const srv = createServer(onConn);
  return new Promise((resolve) => srv.listen(path, () => resolve(srv)));
}

describe('console streams over TLS', () => {
  let listener: Listener;
  let ca: string;
  const servers: Server[] = [];
  const remotes: RemoteConnection[] = [];
  /** The server-side console sockets, as the stand-in Connection handed them out. */
  const sources: Socket[] = [];
  /** The fast guest: how far it got, and its sockets. */
  const fast = { written: 0, finished: false, sockets: [] as Socket[] };
  const guestSide: Socket[] = [];

  const dialChannel = async () => {
    const [cert, key] = await Promise.all([readFile(join(pki, 'clients', 'u-cert.pem'), 'utf8'), readFile(join(pki, 'clients', 'u-key.pem'), 'utf8')]);
    return dialTls({ host: '127.0.0.1', port: listener.port, servername: 'localhost', ca, cert, key });
  };
  const dial = async (features?: string[], ch?: Channel) => {
    const r = await openRemote(ch ?? (await dialChannel()), { keepaliveMs: 0, ...(features ? { features } : {}) });
    remotes.push(r);
    return r;
  };

  beforeAll(async () => {
    await initCa(pki);
    const server = await issueServer(pki, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    await issueClient(pki, { commonName: 'u' });
    ca = await readFile(join(pki, 'ca-cert.pem'), 'utf8');
    servers.push(
      await guestServer(join(tmp, 'echo.sock'), (s) => {
        guestSide.push(s);
        s.write('GUEST-READY\r\n');
        s.on('data', (d) => s.write(d));
        s.on('end', () => s.end());
      }),
      await guestServer(join(tmp, 'fast.sock'), (s) => {
        fast.sockets.push(s);
        s.on('error', () => {});
        // As fast as the socket takes it, 4 MiB of a known pattern, then end.
        const block = Buffer.alloc(64 * 1024);
        const pump = () => {
          while (fast.written < FAST_BYTES) {
            for (let i = 0; i < block.length; i++) block[i] = pattern(fast.written + i);
            fast.written += block.length;
            if (!s.write(Buffer.from(block))) return void s.once('drain', pump);
          }
          s.end(() => (fast.finished = true));
        };
        pump();
      }),
    );
    const conn = {
      uri: { uri: 'test:///streams' },
      console: (name: string): Promise<Duplex> => {
        if (name !== 'echo' && name !== 'fast') return Promise.reject(new VirtkitError('NO_DOMAIN', `no domain ${name}`));
        const s = createConnection(join(tmp, `${name}.sock`));
        sources.push(s);
        return new Promise((resolve) => s.once('connect', () => resolve(s)));
      },
    } as unknown as Connection;
    listener = await listen({ host: '127.0.0.1', port: 0, ca, cert: await readFile(server.cert, 'utf8'), key: await readFile(server.key, 'utf8'), onChannel: (ch) => void serveConnection(ch, conn) });
  });

  afterAll(async () => {
    for (const r of remotes) r.close();
    await listener?.close();
    for (const s of servers) s.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('carries bytes both ways; closing the stream closes the daemon-side socket', async () => {
    const r = await dial();
    expect(r.features).toContain('streams');
    const sock = await r.console('echo');
    let seen = '';
    sock.on('data', (d: Buffer) => (seen += d.toString('latin1')));
    await until('the marker', () => seen.includes('GUEST-READY'));
    // Every byte value, and more than one data frame's worth.
    const bytes = Buffer.alloc(3 * STREAM_CHUNK_BYTES + 5, 0);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i & 0xff;
    sock.write(bytes);
    await until('the echo', () => seen.length >= 'GUEST-READY\r\n'.length + bytes.length);
    expect(Buffer.from(seen.slice('GUEST-READY\r\n'.length), 'latin1').equals(bytes)).toBe(true);

    const source = sources.at(-1)!;
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.destroy();
    await closed;
    await until('the daemon to close its console socket', () => source.destroyed);
    await until('the guest to see its peer go', () => guestSide.at(-1)!.destroyed || guestSide.at(-1)!.readableEnded);
    expect(await r.call('nope').catch((e: VirtkitError) => e.code)).toBe('NO_SUPPORT'); // the session goes on
  });

  it('an end from the guest side ends the stream: the reader gets end, then close', async () => {
    const r = await dial();
    const sock = await r.console('echo');
    let seen = '';
    sock.on('data', (d: Buffer) => (seen += d));
    await until('the marker', () => seen.includes('GUEST-READY'));
    const ended = new Promise<void>((resolve) => sock.once('end', () => resolve()));
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    guestSide.at(-1)!.end('bye\r\n');
    await ended;
    await closed;
    expect(seen.endsWith('bye\r\n')).toBe(true);
  });

  it('a reader that does not read stops the source: at most a window is in flight, the daemon pauses its socket', async () => {
    const r = await dial();
    const sock = (await r.console('fast')) as RemoteStream;
    const source = sources.at(-1)!;
    // Nobody reads: the client holds one window, unacknowledged, and the daemon stops reading the guest.
    await until('a full window at the client', () => sock.unacknowledgedBytes === STREAM_WINDOW_BYTES);
    await until('the daemon to pause the console socket', () => source.isPaused());
    expect(sock.readableLength).toBeLessThanOrEqual(STREAM_WINDOW_BYTES);
    expect(sock.unacknowledgedBytes).toBe(STREAM_WINDOW_BYTES);
    // The guest could not write its 4 MiB: the kernel buffers and the daemon's socket buffer are full.
    expect(fast.finished).toBe(false);
    expect(source.readableLength).toBeLessThan(FAST_BYTES / 2);

    // Reading now: everything arrives, in order, then the end.
    const hash = createHash('sha256');
    let got = 0;
    const done = new Promise<void>((resolve) => sock.on('end', () => resolve()));
    sock.on('data', (d: Buffer) => {
      hash.update(d);
      got += d.length;
    });
    await done;
    expect(got).toBe(FAST_BYTES);
    const want = Buffer.alloc(FAST_BYTES);
    for (let i = 0; i < FAST_BYTES; i++) want[i] = pattern(i);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(want).digest('hex'));
    expect(fast.finished).toBe(true);
  });

  it('refuses a stream open from a client that did not negotiate streams', async () => {
    const r = await dial(['events-resume']);
    expect(r.features).toEqual(['events-resume']);
    expect(await r.console('echo').catch((e: VirtkitError) => e.code)).toBe('NO_SUPPORT'); // the client knows
    expect(await r.call('console', 'echo').catch((e: VirtkitError) => [e.code, e.message])).toEqual(['PROTOCOL_ERROR', expect.stringMatching(/"streams" feature was not negotiated/)]);
  });

  it('a console that cannot be opened fails the call with its code; streams end with the session', async () => {
    const r = await dial();
    expect(await r.console('nope').catch((e: VirtkitError) => e.code)).toBe('NO_DOMAIN');
    // Closed by the caller: the streams close quietly.
    const a = await r.console('echo');
    const b = await r.console('echo');
    const errors: unknown[] = [];
    let closed = 0;
    for (const s of [a, b]) {
      s.on('error', (e) => errors.push(e));
      s.on('close', () => closed++);
    }
    const [sa, sb] = sources.slice(-2);
    r.close();
    await until('both streams to close', () => closed === 2);
    expect(errors).toEqual([]);
    await until('the daemon to close both console sockets', () => sa!.destroyed && sb!.destroyed);
    // Lost (the channel fails under it): the stream fails with IO_ERROR.
    const ch = await dialChannel();
    const r2 = await dial(undefined, ch);
    const c = await r2.console('echo');
    const lost = new Promise<VirtkitError>((resolve) => c.once('error', resolve));
    const sc = sources.at(-1)!;
    ch.close();
    expect((await lost).code).toBe('IO_ERROR');
    await until('the daemon to close that console socket', () => sc.destroyed);
  });
});

describe('protocol violations are PROTOCOL_ERROR', () => {
  /** A served session on an in-memory pair; `raw` reads what the server sends. */
  async function session(features = ['events-resume', 'streams'], conn: Partial<Connection> = {}, opts: ServeOptions = {}) {
    const [client, server] = pair();
    const served = serveConnection(server, { uri: { uri: 'test:///x' }, ...conn } as Connection, opts);
    const it = client.frames[Symbol.asyncIterator]();
    await client.send({ t: 'hello', versions: [1], features });
    const welcome = (await it.next()).value;
    const next = async () => (await it.next()).value as Record<string, unknown> | undefined;
    return { client, server, served, welcome, next };
  }

  it('a first frame that is not a hello is refused', async () => {
    const [client, server] = pair();
    const served = serveConnection(server, {} as Connection);
    await client.send('GET / HTTP/1.1');
    expect((await client.frames[Symbol.asyncIterator]().next()).value).toMatchObject({ t: 'refuse', code: 'PROTOCOL_ERROR' });
    await served;
  });

  it('garbage and unknown message types end the session with an abort naming PROTOCOL_ERROR', async () => {
    for (const bad of [42, ['call'], { t: 'teleport', id: 3 }, { t: 'call', method: 'info', params: [] }]) {
      const s = await session();
      await s.client.send(bad);
      expect(await s.next()).toMatchObject({ t: 'abort', code: 'PROTOCOL_ERROR', message: expect.stringMatching(/^protocol error: /) });
      await s.served;
      expect(await s.next()).toBeUndefined(); // closed
    }
  });

  it('a cancel without the "cancel" feature, or without an integer id, ends the session', async () => {
    for (const [features, bad, why] of [
      [['streams'], { t: 'cancel', id: 1 }, /a cancel needs the "cancel" feature/],
      [['cancel'], { t: 'cancel', id: 'x' }, /a cancel needs an integer id/],
    ] as const) {
      const s = await session([...features]);
      expect(s.welcome).toMatchObject({ features: [...features] });
      await s.client.send(bad);
      expect(await s.next()).toMatchObject({ t: 'abort', code: 'PROTOCOL_ERROR', message: expect.stringMatching(why) });
      await s.served;
    }
  });

  it('a cancel reaches the call it names, and only that one; a cancel for a finished call is ignored', async () => {
    const signals = new Map<string, AbortSignal>();
    const parked = (name: string, opts: { signal?: AbortSignal }) =>
      new Promise((resolve, reject) => {
        signals.set(name, opts.signal!);
        opts.signal!.addEventListener('abort', () => reject(opts.signal!.reason), { once: true });
        setTimeout(() => resolve({ state: 'running', reason: 'booted' }), 300);
      });
    const s = await session(['cancel'], { start: parked as Connection['start'], suspend: parked as Connection['suspend'] });
    await s.client.send({ t: 'cancel', id: 99 }); // nothing in flight: ignored
    await s.client.send({ t: 'call', id: 1, method: 'start', params: ['a'] });
    await s.client.send({ t: 'call', id: 2, method: 'suspend', params: ['b'] });
    await s.client.send({ t: 'cancel', id: 1 });
    expect(await s.next()).toMatchObject({ t: 'error', id: 1, code: 'CANCELLED', message: 'cancelled by the client' });
    expect(await s.next()).toMatchObject({ t: 'result', id: 2, value: { state: 'running' } });
    expect([signals.get('a')!.aborted, signals.get('b')!.aborted]).toEqual([true, false]);
    s.client.close();
    await s.served;
  });

  it('reports a job\'s progress only to a client that asked for the feature', async () => {
    const reporting = async (_name: string, opts: { onProgress?: (p: number, m: string) => void }) => {
      opts.onProgress?.(50, 'half way');
      return { state: 'running', reason: 'booted' };
    };
    for (const [features, frames] of [
      [['progress'], [{ t: 'progress', id: 1, percent: 50, message: 'half way' }, { t: 'result', id: 1 }]],
      [['cancel'], [{ t: 'result', id: 1 }]],
    ] as const) {
      const s = await session([...features], { start: reporting as unknown as Connection['start'] });
      await s.client.send({ t: 'call', id: 1, method: 'start', params: ['a'] });
      for (const f of frames) expect(await s.next()).toMatchObject(f);
      s.client.close();
      await s.served;
    }
  });

  it('answers a call over the in-flight limit at once with OPERATION_INVALID; the session goes on', async () => {
    const waiting: Array<() => void> = [];
    const parked = () => new Promise((resolve) => waiting.push(() => resolve({ state: 'running', reason: 'booted' })));
    const s = await session([], { start: parked as Connection['start'] }, { maxCallsInFlight: 2 });
    for (const id of [1, 2, 3]) await s.client.send({ t: 'call', id, method: 'start', params: ['a'] });
    expect(await s.next()).toMatchObject({ t: 'error', id: 3, code: 'OPERATION_INVALID', message: 'at most 2 calls may be in flight on one connection: wait for some to finish' });
    waiting.shift()!();
    expect(await s.next()).toMatchObject({ t: 'result', id: 1 });
    await s.client.send({ t: 'call', id: 4, method: 'start', params: ['a'] });
    for (const w of waiting.splice(0)) w();
    expect(await s.next()).toMatchObject({ t: 'result', id: 2 });
    for (const w of waiting.splice(0)) w();
    expect(await s.next()).toMatchObject({ t: 'result', id: 4 });
    s.client.close();
    await s.served;
  });

  it('a value past the decoding bounds ends the session before any handler runs; a long unknown method is not echoed whole', async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    for (const [params, why] of [
      [[{ $big: '9'.repeat(5000) }], /a \$big of 5000 characters \(at most 64 digits\)/],
      [[deep], /a value nested deeper than 64 levels/],
    ] as const) {
      let ran = false;
      const s = await session(['cancel'], { info: (async () => { ran = true; }) as unknown as Connection['info'] });
      await s.client.send({ t: 'call', id: 1, method: 'info', params });
      expect(await s.next()).toMatchObject({ t: 'abort', code: 'PROTOCOL_ERROR', message: expect.stringMatching(why) });
      await s.served;
      expect(ran).toBe(false);
    }
    const s = await session([]);
    await s.client.send({ t: 'call', id: 1, method: 'm'.repeat(100_000), params: [] });
    const e = (await s.next()) as { code: string; message: string };
    expect(e.code).toBe('NO_SUPPORT');
    expect(e.message.length).toBeLessThan(200);
    s.client.close();
    await s.served;
  });

  it('a call id already in flight ends the session', async () => {
    const s = await session(['cancel'], { start: (() => new Promise(() => {})) as Connection['start'] });
    await s.client.send({ t: 'call', id: 7, method: 'start', params: ['a'] });
    await s.client.send({ t: 'call', id: 7, method: 'start', params: ['b'] });
    expect(await s.next()).toMatchObject({ t: 'abort', code: 'PROTOCOL_ERROR', message: 'protocol error: call id 7 is already in flight' });
    await s.served;
  });

  it('the client fails its calls with the abort', async () => {
    const [c, s] = pair();
    void (async () => {
      const it = s.frames[Symbol.asyncIterator]();
      await it.next();
      await s.send({ t: 'welcome', version: 1, features: [], node: { uri: 'test:///x' } });
      await it.next(); // the call
      await s.send({ t: 'abort', code: 'PROTOCOL_ERROR', message: 'protocol error: you did something' });
      s.close();
    })();
    const remote = await openRemote(c, { keepaliveMs: 0 });
    expect(await remote.info('x').catch((e: VirtkitError) => [e.code, e.message])).toEqual(['PROTOCOL_ERROR', 'the daemon ended the session: protocol error: you did something']);
    // And a welcome that is not one is a protocol error too.
    const [c2, s2] = pair();
    void (async () => {
      await s2.frames[Symbol.asyncIterator]().next();
      await s2.send({ t: 'welcome', version: 'one' });
    })();
    expect(await openRemote(c2).catch((e: VirtkitError) => e.code)).toBe('PROTOCOL_ERROR');
    // A transport that closed because the peer broke the framing (TLS: BAD_FRAME, FRAME_TOO_LARGE).
    const [c3, s3] = pair();
    void (async () => {
      await s3.frames[Symbol.asyncIterator]().next();
      await s3.send({ t: 'welcome', version: 1, features: [], node: { uri: 'test:///x' } });
    })();
    const r3 = await openRemote(c3, { keepaliveMs: 0 });
    const lost = r3.info('x').catch((e: VirtkitError) => [e.code, e.message]);
    c3.closeReason = { code: 'BAD_FRAME', message: 'frame payload of 5 bytes is not valid JSON' };
    s3.close();
    expect(await lost).toEqual(['PROTOCOL_ERROR', 'connection to the daemon lost: BAD_FRAME: frame payload of 5 bytes is not valid JSON']);
  });

  it('a frame for a stream that does not exist is answered with a close carrying PROTOCOL_ERROR; the session goes on', async () => {
    const s = await session();
    await s.client.send({ t: 'data', s: 7, d: 'aGk=' });
    expect(await s.next()).toEqual({ t: 'close', s: 7, code: 'PROTOCOL_ERROR', message: 'protocol error: no stream 7' });
    await s.client.send({ t: 'ping', n: 1 });
    expect(await s.next()).toEqual({ t: 'pong', n: 1 });
    // Without the feature, the same, saying so.
    const t = await session(['events-resume']);
    await t.client.send({ t: 'ack', s: 1, n: 10 });
    expect(await t.next()).toMatchObject({ t: 'close', s: 1, code: 'PROTOCOL_ERROR', message: expect.stringMatching(/streams were not negotiated/) });
    s.client.close();
    t.client.close();
  });

  it('data beyond the window, an oversized data frame or an ack for bytes never sent fail that stream with PROTOCOL_ERROR', async () => {
    // A console that never reads what it is sent (a stuck guest): the client must stop at a window.
    const cases: [string, (sid: number) => Record<string, unknown>[]][] = [
      ['window', (sid) => Array.from({ length: STREAM_WINDOW_BYTES / STREAM_CHUNK_BYTES + 1 }, () => ({ t: 'data', s: sid, d: Buffer.alloc(STREAM_CHUNK_BYTES).toString('base64') }))],
      ['oversize', (sid) => [{ t: 'data', s: sid, d: Buffer.alloc(STREAM_CHUNK_BYTES + 3).toString('base64') }]],
      ['not base64', (sid) => [{ t: 'data', s: sid, d: '!!!!' }]],
      ['ack', (sid) => [{ t: 'ack', s: sid, n: 1 }]],
    ];
    for (const [what, frames] of cases) {
      // A console that never takes what it is written (a stuck guest) and says nothing.
      const stuck = new Duplex({ read() {}, write() {} });
      const s = await session(undefined, { console: async () => stuck });
      await s.client.send({ t: 'call', id: 1, method: 'console', params: ['vm'] });
      const opened = await s.next();
      expect(opened, what).toEqual({ t: 'result', id: 1, value: { stream: 1 } });
      for (const f of frames(1)) await s.client.send(f);
      let m = await s.next();
      while (m && m.t === 'ack') m = await s.next();
      expect(m, what).toMatchObject({ t: 'close', s: 1, code: 'PROTOCOL_ERROR' });
      expect(stuck.destroyed, what).toBe(true);
      s.client.close();
    }
  });

  it('the client sends no more than the window before an ack, and a close while it waits ends the stream', async () => {
    const [c, srv] = pair();
    const got: Record<string, unknown>[] = [];
    let sentBytes = 0;
    void (async () => {
      const it = srv.frames[Symbol.asyncIterator]();
      await it.next();
      await srv.send({ t: 'welcome', version: 1, features: ['streams'], node: { uri: 'test:///x' } });
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        const m = r.value as Record<string, unknown>;
        got.push(m);
        if (m.t === 'call') await srv.send({ t: 'result', id: m.id, value: { stream: 1 } });
        if (m.t === 'data') sentBytes += Buffer.from(m.d as string, 'base64').length;
      }
    })();
    const remote = await openRemote(c, { keepaliveMs: 0 });
    const sock = await remote.console('vm');
    const wrote = new Promise<void>((resolve) => sock.write(Buffer.alloc(STREAM_WINDOW_BYTES + 100_000, 1), () => resolve()));
    await until('a window of data at the server', () => sentBytes === STREAM_WINDOW_BYTES);
    await new Promise((r) => setTimeout(r, 50));
    expect(sentBytes).toBe(STREAM_WINDOW_BYTES); // no ack, no more
    // An ack lets the rest go.
    await srv.send({ t: 'ack', s: 1, n: STREAM_WINDOW_BYTES });
    await wrote;
    await until('the rest', () => sentBytes === STREAM_WINDOW_BYTES + 100_000);
    // Blocked again on credit, then closed by the daemon: the stream still ends.
    sock.write(Buffer.alloc(STREAM_WINDOW_BYTES, 2));
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    sock.resume();
    await srv.send({ t: 'close', s: 1 });
    await closed;
    expect(got.filter((m) => m.t === 'close')).toEqual([]); // a close is not answered
    remote.close();
  });

  it('a source that ends while bytes wait for credit: the rest and the close follow the acks', async () => {
    const total = STREAM_WINDOW_BYTES + 44_000;
    const source = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
    const s = await session(undefined, { console: async () => source });
    await s.client.send({ t: 'call', id: 1, method: 'console', params: ['vm'] });
    expect(await s.next()).toEqual({ t: 'result', id: 1, value: { stream: 1 } });
    source.push(Buffer.alloc(total, 9));
    source.push(null);
    source.destroy(); // gone, with bytes still queued for the client
    let bytes = 0;
    let m = await s.next();
    while (m?.t === 'data') {
      bytes += Buffer.from(m.d as string, 'base64').length;
      if (bytes === STREAM_WINDOW_BYTES) await s.client.send({ t: 'ack', s: 1, n: STREAM_WINDOW_BYTES });
      m = await s.next();
    }
    expect(bytes).toBe(total);
    expect(m).toEqual({ t: 'close', s: 1 });
    s.client.close();
  });
});
