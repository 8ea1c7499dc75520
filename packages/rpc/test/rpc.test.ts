// The remote protocol over real mutually authenticated TLS, serving a real core Connection
// to test:///default; plus protocol edge cases over an in-memory channel pair.
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, Host, VirtkitError, type Connection, type DomainEvent } from '@virtkit/core';
import { connect as dialTls, initCa, issueClient, issueServer, listen, type Channel, type Listener, type PeerIdentity } from '@virtkit/transport-tls';
import { decodeValue, encodeValue, openRemote, serveConnection, type RemoteConnection, decodeFrame, sendMessage } from '../src/index.js';
import { pair } from './mem.js';
import { failure } from './failure.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'virtkit-rpc-test-'));
const pki = join(tmp, 'pki');
const MUTATING = new Set(['define', 'undefine', 'start', 'shutdown', 'destroy', 'reboot', 'reset', 'suspend', 'resume', 'setAutostart', 'exec']);

/** The next n values of an iterator, or a failure after `ms`. */
async function take<T>(it: AsyncIterator<T>, n: number, ms = 3000): Promise<T[]> {
  const out: T[] = [];
  const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`only ${out.length} of ${n} values within ${ms} ms`)), ms));
  while (out.length < n) {
    const r = await Promise.race([it.next(), deadline]);
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rpc over TLS to test:///default', () => {
  let host: Host;
  let conn: Connection;
  let listener: Listener;
  let ca: string;
  const clients: RemoteConnection[] = [];
  const internalErrors: unknown[] = [];

  async function dial(user: string): Promise<{ remote: RemoteConnection; channel: Channel }> {
    const [cert, key] = await Promise.all([readFile(join(pki, 'clients', `${user}-cert.pem`), 'utf8'), readFile(join(pki, 'clients', `${user}-key.pem`), 'utf8')]);
    const channel = await dialTls({ host: '127.0.0.1', port: listener.port, servername: 'localhost', ca, cert, key });
    const remote = await openRemote(channel);
    clients.push(remote);
    return { remote, channel };
  }

  beforeAll(async () => {
    await initCa(pki);
    const server = await issueServer(pki, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    await issueClient(pki, { commonName: 'admin' });
    await issueClient(pki, { commonName: 'reader' });
    ca = await readFile(join(pki, 'ca-cert.pem'), 'utf8');
    host = await new Host({
      stateRoot: join(tmp, 'state'),
      runtimeRoot: join(tmp, 'run'),
      cacheDir: join(repoRoot, '.cache', 'glue'),
      pluginSearch: [join(repoRoot, 'packages', 'cli')],
    }).init();
    conn = await connect('test:///default', { host });
    listener = await listen({
      host: '127.0.0.1',
      port: 0,
      ca,
      cert: await readFile(server.cert, 'utf8'),
      key: await readFile(server.key, 'utf8'),
      onChannel: (ch) => {
        void serveConnection(ch, conn, {
          authorize(peer: PeerIdentity, method) {
            if (peer.subject.CN === 'reader' && MUTATING.has(method)) {
              throw new VirtkitError('ACCESS_DENIED', `access denied: ${peer.subject.CN} is read-only and may not call ${method}`);
            }
          },
          onError: (e) => internalErrors.push(e),
        });
      },
    });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await listener?.close();
    await conn?.close();
    await host?.close();
  });

  it('runs the lifecycle remotely with the results a local connection gives, bigints intact', async () => {
    const { remote } = await dial('admin');
    expect(remote.uri).toBe('test:///default');
    expect(remote.features).toEqual(['events-resume', 'streams', 'cancel', 'progress']);
    const events = remote.events();

    const web = { name: 'web1', memoryMiB: 512, vcpus: 1, os: { type: 'hvm' } };
    expect(await remote.define(web)).toMatchObject({ name: 'web1', state: 'shut-off', persistent: true });
    expect(await remote.listDomains({ all: true })).toEqual(await conn.listDomains({ all: true }));
    expect((await remote.listDomains({ all: true })).map((d) => [d.name, d.state])).toEqual([['test', 'running'], ['web1', 'shut-off']]);
    expect(await remote.start('web1')).toEqual({ state: 'running', reason: 'booted' });
    expect(await remote.listDomains()).toEqual(await conn.listDomains());
    expect(await remote.suspend('web1')).toEqual({ state: 'paused', reason: 'user' });
    const info = await remote.info('web1');
    expect(typeof info.maxMemoryKib).toBe('bigint');
    expect(info.maxMemoryKib).toBe(512n * 1024n);
    expect(info).toEqual(await conn.info('web1')); // paused: cpu time stands still
    expect(await remote.resume('web1')).toEqual({ state: 'running', reason: 'unpaused' });
    expect(await remote.shutdown('web1', { timeoutMs: 5000 })).toEqual({ state: 'shut-off', reason: 'shutdown' });
    expect(await remote.info('web1')).toMatchObject({ state: 'shut-off', memoryKib: 0n, maxMemoryKib: 524288n, vcpus: 1 });
    expect(await remote.getConfig('web1')).toEqual(await conn.getConfig('web1'));
    expect(await remote.nodeInfo()).toEqual(await conn.nodeInfo());
    expect(await remote.capabilities()).toEqual(conn.capabilities());
    expect(await remote.supports('start')).toBe(true);
    await remote.setAutostart('web1', true);
    expect((await remote.listDomains({ all: true })).find((d) => d.name === 'web1')?.autostart).toBe(true);

    // defined, started, suspended, resumed, shutdown (at least): in order, seq increasing.
    const got = await take(events, 5);
    expect(got.map((e) => e.kind)).toEqual(['defined', 'started', 'suspended', 'resumed', 'stopped']);
    for (let i = 1; i < got.length; i++) expect(got[i]!.seq).toBeGreaterThan(got[i - 1]!.seq);
    expect(remote.lastSeq).toBe(got[got.length - 1]!.seq);
    await events.return!();
  });

  it('errors carry their code; unknown methods are NO_SUPPORT, never property lookups', async () => {
    const { remote } = await dial('admin');
    const e1 = await failure(remote.call('toString'));
    expect(e1.code).toBe('NO_SUPPORT');
    expect(e1.message).toContain('toString');
    expect((await failure(remote.call('console', 'web1'))).code).toBe('NO_SUPPORT');
    expect((await failure(remote.call('__proto__'))).code).toBe('NO_SUPPORT');
    expect((await failure(remote.start('nope'))).code).toBe('NO_DOMAIN');
    const bad = await failure(remote.define({ name: 'bad', memoryMiB: 'lots', vcpus: 1, os: { type: 'hvm' } }));
    expect(bad.code).toBe('INVALID_CONFIG');
    expect(bad.fields?.length).toBeGreaterThan(0);
    expect((await failure(remote.call('start', 42))).code).toBe('INVALID_ARGUMENT');
    expect(internalErrors).toEqual([]);
  });

  it('an authorize hook denying a read-only peer reaches the client; the server keeps serving', async () => {
    const { remote } = await dial('reader');
    const denied = await failure(remote.start('test'));
    expect(denied.code).toBe('ACCESS_DENIED');
    expect(denied.message).toMatch(/access denied: reader is read-only and may not call start/);
    expect((await remote.listDomains()).map((d) => d.name)).toContain('test');
    const { remote: admin } = await dial('admin');
    expect(await admin.info('test')).toMatchObject({ state: 'running' });
  });

  it('answers 8 concurrent calls, multiplexed by id', async () => {
    const { remote } = await dial('admin');
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? remote.info('test') : remote.info('web1'))));
    expect(all).toHaveLength(8);
    all.forEach((info, i) => expect(info.state).toBe(i % 2 ? 'running' : 'shut-off'));
  });

  it('runs exec remotely: bytes travel as base64 strings, results come back as bytes', async () => {
    const { remote } = await dial('admin');
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 11) % 256);
    const r = await remote.exec('test', ['cat'], { stdin: bytes });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(r.stdout).equals(Buffer.from(bytes))).toBe(true);
    expect(await remote.exec('test', ['env'], { env: { A: '1' }, cwd: '/', timeoutMs: 1000 })).toMatchObject({ exitCode: 0, signal: null, truncated: false });
    // On the wire: base64 text, not an array of numbers.
    const raw = await remote.call<Record<string, unknown>>('exec', 'test', ['echo', 'hi'], { stdin: Buffer.from('x').toString('base64') });
    expect(raw).toEqual({ exitCode: 0, signal: null, stdout: Buffer.from('hi\n').toString('base64'), stderr: '', truncated: false });
    expect((await failure(remote.call('exec', 'test', ['cat'], { stdin: [1, 2] }))).message).toBe('stdin must be a base64 string');
    expect((await failure(remote.exec('test', []))).message).toBe('argv must be a non-empty array of strings');
    expect((await failure(remote.exec('web1', ['true']))).code).toBe('OPERATION_INVALID');
  });

  it('resumes events after a reconnect with since: lastSeq, each once and in order', async () => {
    const a = await dial('admin');
    const seen: DomainEvent[] = [];
    a.remote.onEvent((e) => seen.push(e));
    await a.remote.define({ name: 'ev1', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' } });
    while (seen.length === 0) await sleep(5);
    const lastSeq = a.remote.lastSeq!;
    expect(lastSeq).toBe(seen[0]!.seq);

    // A call in flight when the channel goes fails clearly.
    const inFlight = a.remote.info('ev1');
    a.channel.close();
    const lost = await failure(inFlight).catch(() => undefined);
    if (lost) expect(lost.code).toBe('IO_ERROR');
    await sleep(20);
    const after = await failure(a.remote.listDomains());
    expect(after.code).toBe('IO_ERROR');
    expect(after.message).toMatch(/connection to the daemon lost/);

    // Meanwhile another client changes things.
    const b = await dial('admin');
    await b.remote.start('ev1');
    await b.remote.suspend('ev1');
    await b.remote.destroy('ev1');
    await b.remote.undefine('ev1');
    const truth: DomainEvent[] = [];
    for await (const e of conn.events({ since: lastSeq, follow: false })) truth.push(e);
    expect(truth.length).toBeGreaterThanOrEqual(4);

    const a2 = await dial('admin');
    const it = a2.remote.events({ since: lastSeq });
    const got = await take(it, truth.length);
    expect(got).toEqual(truth);
    // Nothing more (no duplicates) until something new happens.
    const more = await Promise.race([it.next(), sleep(200).then(() => 'quiet')]);
    expect(more).toBe('quiet');
    expect(a2.remote.lastSeq).toBe(truth[truth.length - 1]!.seq);
  });
});

describe('protocol edge cases', () => {
  it('encodes bigints and typed arrays, and decodes them back', () => {
    const v = { a: 1n << 70n, b: new Uint32Array([1, 2, 3]), c: [-5n], d: undefined, e: 'x' };
    const wire = JSON.parse(JSON.stringify(encodeValue(v)));
    expect(wire).toEqual({ a: { $big: '1180591620717411303424' }, b: [1, 2, 3], c: [{ $big: '-5' }], e: 'x' });
    expect(decodeValue(wire)).toEqual({ a: 1n << 70n, b: [1, 2, 3], c: [-5n], e: 'x' });
  });

  it('keeps a "__proto__" key a plain own key both ways, and reads $big only alone and of digits', () => {
    const wire = JSON.parse('{"__proto__":{"polluted":true},"n":{"$big":"7"},"m":{"$big":"7","x":1},"s":{"$big":"7a"}}');
    const d = decodeValue(wire) as Record<string, unknown>;
    expect(Object.getPrototypeOf(d)).toBe(Object.prototype);
    expect(Object.keys(d)).toEqual(['__proto__', 'n', 'm', 's']);
    expect(d.n).toBe(7n);
    expect(d.m).toEqual({ $big: '7', x: 1 });
    expect(d.s).toEqual({ $big: '7a' });
    const e = encodeValue(d) as Record<string, unknown>;
    expect(Object.getPrototypeOf(e)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(e))).toEqual(wire);
  });

  it('writes the same JSON through a channel that takes JSON text (one pass) as through encodeValue, and decodes frames in place alike', async () => {
    const v = { a: 1n << 70n, b: new Uint8Array([1, 2]), c: [undefined, -5n, new BigUint64Array([3n])], d: undefined, e: { toJSON: () => ({ big: 9n }) }, f: JSON.parse('{"__proto__":{"p":1}}') };
    let text = '';
    await sendMessage({ send: async () => {}, sendJson: async (j: string) => void (text = j) }, v);
    let sent: unknown;
    await sendMessage({ send: async (x: unknown) => void (sent = x) }, v);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(sent)));
    expect(text).toBe(JSON.stringify(sent));
    const wire = JSON.parse(text);
    expect(decodeFrame(JSON.parse(text))).toEqual(decodeValue(wire));
  });

  it('refuses a client with no common version, with the reason', async () => {
    const [client, server] = pair();
    const done = serveConnection(server, {} as Connection);
    await client.send({ t: 'hello', versions: [99], features: [] });
    const it = client.frames[Symbol.asyncIterator]();
    const r = await it.next();
    expect(r.value).toMatchObject({ t: 'refuse', code: 'NO_SUPPORT', message: expect.stringContaining('no common protocol version') });
    await done;

    // openRemote turns a refusal into a VirtkitError naming the daemon's reason.
    const [c2, s2] = pair();
    void (async () => {
      await s2.frames[Symbol.asyncIterator]().next();
      await s2.send({ t: 'refuse', code: 'NO_SUPPORT', message: 'server speaks 7 only' });
    })();
    const e = await failure(openRemote(c2));
    expect(e.code).toBe('NO_SUPPORT');
    expect(e.message).toBe('the daemon refused the connection: server speaks 7 only');
  });

  it('fails pending calls when the channel closes, and detects a dead peer by keepalive', async () => {
    // A "daemon" that welcomes, then never answers anything.
    const mute = async () => {
      const [c, s] = pair();
      void (async () => {
        await s.frames[Symbol.asyncIterator]().next();
        await s.send({ t: 'welcome', version: 1, features: [], node: { uri: 'test:///default' } });
      })();
      return { s, remote: await openRemote(c, { keepaliveMs: 40 }) };
    };
    const one = await mute();
    const pending = one.remote.info('x');
    one.s.close();
    const e1 = await failure(pending);
    expect(e1.code).toBe('IO_ERROR');
    expect(e1.message).toMatch(/^connection to the daemon lost: /);

    const two = await mute();
    const started = Date.now();
    const e2 = await failure(two.remote.nodeInfo());
    expect(e2.code).toBe('IO_ERROR');
    expect(e2.message).toMatch(/no answer to keepalive pings/);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(two.remote.closed).toBe(true);
  });
});
