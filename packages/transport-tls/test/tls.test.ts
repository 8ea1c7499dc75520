import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Channel, type CloseReason, connect, encodeFrame, FrameReader, listen, type Listener, TransportError } from '../src/index.js';

// ---------------------------------------------------------------------------------------------
// Test PKI, made with the openssl CLI (test set-up only).

interface Pair {
  cert: string;
  key: string;
}

const dir = mkdtempSync(join(tmpdir(), 'virtkit-tls-test-'));

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ecKey(name: string): string {
  const path = join(dir, `${name}.key`);
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', path);
  chmodSync(path, 0o600);
  return path;
}

function makeCa(name: string): Pair & { certPath: string; keyPath: string } {
  const keyPath = ecKey(name);
  const certPath = join(dir, `${name}.pem`);
  openssl('req', '-x509', '-new', '-key', keyPath, '-out', certPath, '-days', '2', '-subj', `/O=virtkit-test/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  return { certPath, keyPath, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

const EXTENSIONS = `
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SAN
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
`;

let serial = 1000;

function csr(name: string, subj: string): { keyPath: string; csrPath: string } {
  const keyPath = ecKey(name);
  const csrPath = join(dir, `${name}.csr`);
  openssl('req', '-new', '-key', keyPath, '-out', csrPath, '-subj', subj);
  return { keyPath, csrPath };
}

function issue(ca: ReturnType<typeof makeCa>, name: string, subj: string, kind: 'server' | 'client', san = ''): Pair {
  const { keyPath, csrPath } = csr(name, subj);
  const certPath = join(dir, `${name}.pem`);
  const extPath = join(dir, 'ext.cnf');
  writeFileSync(extPath, EXTENSIONS);
  process.env.SAN = san || 'DNS:unused.invalid';
  openssl('x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-set_serial', String(serial++),
    '-days', '2', '-sha256', '-extfile', extPath, '-extensions', kind, '-out', certPath);
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

/** OpenSSL 3.0's `x509` has no -not_before/-not_after: use `openssl ca` with explicit dates. */
function issueExpired(ca: ReturnType<typeof makeCa>, name: string, subj: string): Pair {
  const { keyPath, csrPath } = csr(name, subj);
  const caDir = join(dir, 'ca-db');
  execFileSync('mkdir', ['-p', caDir]);
  writeFileSync(join(caDir, 'index.txt'), '');
  writeFileSync(join(caDir, 'serial'), '4000\n');
  const cnf = join(dir, 'ca.cnf');
  writeFileSync(cnf, `
[ca]
default_ca = testca
[testca]
database = ${caDir}/index.txt
new_certs_dir = ${caDir}
serial = ${caDir}/serial
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
organizationName = optional
${EXTENSIONS.replace('$ENV::SAN', 'DNS:unused.invalid')}`);
  const certPath = join(dir, `${name}.pem`);
  openssl('ca', '-batch', '-notext', '-config', cnf, '-cert', ca.certPath, '-keyfile', ca.keyPath, '-in', csrPath, '-out', certPath,
    '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extfile', cnf, '-extensions', 'client');
  return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
}

let ca: ReturnType<typeof makeCa>;
let server: Pair;
let wrongHostServer: Pair;
let client: Pair;
let foreignClient: Pair;
let expiredClient: Pair;

// ---------------------------------------------------------------------------------------------
// A server that greets each client with its CN and echoes every frame.

const MAX = 1024;
let listener: Listener;
const accepted: { ch: Channel; closed: Promise<CloseReason> }[] = [];

function closedOf(ch: Channel): Promise<CloseReason> {
  return new Promise((resolve) => ch.once('close', resolve));
}

async function next(it: AsyncIterator<unknown>): Promise<unknown> {
  const r = await it.next();
  if (r.done) throw new Error('frames ended');
  return r.value;
}

function clientOpts(id: Pair = client) {
  return { host: '127.0.0.1', port: listener.port, ca: ca.cert, cert: id.cert, key: id.key, handshakeTimeoutMs: 3000 };
}

/**
 * A refused client: either connect() rejects, or (TLS 1.3: the server judges the client
 * certificate after the client has already seen 'secureConnect') the channel closes on its
 * first read. Either way no frame ever arrives (a good client always gets a welcome frame).
 * How it closes: a missing certificate makes OpenSSL send an alert; a certificate that fails
 * verification (unknown CA, expired) is rejected by node itself, which just closes the socket,
 * so the client sees the connection end (PEER_CLOSED) rather than an alert.
 */
async function refusal(attempt: Promise<Channel>): Promise<string> {
  let ch: Channel;
  try {
    ch = await attempt;
  } catch (e) {
    expect(e).toBeInstanceOf(TransportError);
    return (e as TransportError).code;
  }
  const closed = closedOf(ch);
  const frames: unknown[] = [];
  for await (const f of ch.frames) frames.push(f);
  expect(frames).toEqual([]);
  return (await closed).code;
}

beforeAll(async () => {
  ca = makeCa('test-ca');
  const otherCa = makeCa('other-ca');
  server = issue(ca, 'server', '/O=virtkit-test/CN=virtkitd.test', 'server', 'IP:127.0.0.1,DNS:localhost');
  wrongHostServer = issue(ca, 'wrong-host', '/O=virtkit-test/CN=elsewhere', 'server', 'IP:10.255.0.9,DNS:elsewhere.invalid');
  client = issue(ca, 'client', '/O=virtkit-test/CN=client-1', 'client');
  foreignClient = issue(otherCa, 'foreign-client', '/O=virtkit-test/CN=client-1', 'client');
  expiredClient = issueExpired(ca, 'expired-client', '/O=virtkit-test/CN=client-1');

  listener = await listen({
    host: '127.0.0.1',
    port: 0,
    ca: ca.cert,
    cert: server.cert,
    key: server.key,
    handshakeTimeoutMs: 300,
    maxFrameBytes: MAX,
    async onChannel(ch) {
      accepted.push({ ch, closed: closedOf(ch) });
      await ch.send({ welcome: ch.peer.subject.CN });
      for await (const f of ch.frames) await ch.send({ echo: f });
    },
  });
});

afterAll(async () => {
  await listener?.close();
  rmSync(dir, { recursive: true, force: true });
  delete process.env.SAN;
});

describe('mutual TLS channels', () => {
  it('the test PKI is what it claims to be', () => {
    const caKey = new X509Certificate(ca.cert).publicKey;
    const expired = new X509Certificate(expiredClient.cert);
    expect(expired.verify(caKey)).toBe(true); // signed by the right CA: refused only for its dates
    expect(new Date(expired.validTo).getTime()).toBeLessThan(Date.now());
    expect(new X509Certificate(foreignClient.cert).verify(caKey)).toBe(false);
    expect(new X509Certificate(foreignClient.cert).subject).toBe(new X509Certificate(client.cert).subject);
    expect(new X509Certificate(client.cert).verify(caKey)).toBe(true);
    expect(new X509Certificate(wrongHostServer.cert).verify(caKey)).toBe(true); // refused only for its names
    expect((readFileSync(join(dir, 'client.key')).length > 0)).toBe(true);
    expect(execFileSync('stat', ['-c', '%a', join(dir, 'client.key')]).toString().trim()).toBe('600');
  });

  it('a good client exchanges frames both ways; each side sees the other identity', async () => {
    const before = accepted.length;
    const ch = await connect(clientOpts());
    expect(ch.peer.authorized).toBe(true);
    expect(ch.peer.subject).toMatchObject({ CN: 'virtkitd.test', O: 'virtkit-test' });
    expect(ch.peer.fingerprint256).toBe(new X509Certificate(server.cert).fingerprint256);

    const it = ch.frames[Symbol.asyncIterator]();
    expect(await next(it)).toEqual({ welcome: 'client-1' });
    await ch.send({ op: 'ping', n: 1 });
    await ch.send(['two', 2]);
    expect(await next(it)).toEqual({ echo: { op: 'ping', n: 1 } });
    expect(await next(it)).toEqual({ echo: ['two', 2] });

    const srv = accepted[before]!;
    expect(srv.ch.peer.subject.CN).toBe('client-1');
    expect(srv.ch.peer.authorized).toBe(true);
    expect(srv.ch.peer.fingerprint256).toBe(new X509Certificate(client.cert).fingerprint256);

    const closed = closedOf(ch);
    ch.close();
    expect((await closed).code).toBe('CLOSED');
    expect((await srv.closed).code).toBe('PEER_CLOSED');
    await expect(ch.send(1)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' });
  });

  it('the server name can be checked by DNS SAN too', async () => {
    const ch = await connect({ ...clientOpts(), servername: 'localhost' });
    expect(await next(ch.frames[Symbol.asyncIterator]())).toEqual({ welcome: 'client-1' });
    ch.close();
  });

  it('refuses a client without a certificate', async () => {
    const before = accepted.length;
    const sock = tls.connect({ host: '127.0.0.1', port: listener.port, ca: ca.cert, minVersion: 'TLSv1.3' });
    const outcome = await new Promise<{ data: number; error?: string }>((resolve) => {
      let data = 0;
      let error: string | undefined;
      sock.on('data', (d: Buffer) => (data += d.length));
      sock.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
      sock.on('close', () => resolve({ data, error }));
    });
    expect(outcome.data).toBe(0);
    expect(outcome.error).toMatch(/ALERT|ECONNRESET/);
    expect(accepted.length).toBe(before);
  });

  it('refuses a client certificate from another CA', async () => {
    const before = accepted.length;
    expect(await refusal(connect(clientOpts(foreignClient)))).toMatch(/ALERT|ECONNRESET|PEER_CLOSED/);
    expect(accepted.length).toBe(before);
  });

  it('refuses an expired client certificate', async () => {
    const before = accepted.length;
    expect(await refusal(connect(clientOpts(expiredClient)))).toMatch(/ALERT|ECONNRESET|PEER_CLOSED/);
    expect(accepted.length).toBe(before);
  });

  it('the client refuses a server whose certificate names another host', async () => {
    const other = await listen({ host: '127.0.0.1', port: 0, ca: ca.cert, cert: wrongHostServer.cert, key: wrongHostServer.key, onChannel: () => {} });
    try {
      const opts = { ...clientOpts(), port: other.port };
      await expect(connect(opts)).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      await expect(connect({ ...opts, servername: 'localhost' })).rejects.toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    } finally {
      await other.close();
    }
  });

  it('closes a channel that sends a frame over the maximum, and keeps serving others', async () => {
    const before = accepted.length;
    const ch = await connect({ ...clientOpts(), maxFrameBytes: 64 * 1024 });
    const closed = closedOf(ch);
    const it = ch.frames[Symbol.asyncIterator]();
    expect(await next(it)).toEqual({ welcome: 'client-1' });
    await ch.send('x'.repeat(MAX + 1));
    expect(await closed).toMatchObject({ code: 'FRAME_TOO_LARGE', remote: true });
    expect(await accepted[before]!.closed).toMatchObject({ code: 'FRAME_TOO_LARGE' });

    const ok = await connect(clientOpts());
    const it2 = ok.frames[Symbol.asyncIterator]();
    expect(await next(it2)).toEqual({ welcome: 'client-1' });
    await ok.send('still here');
    expect(await next(it2)).toEqual({ echo: 'still here' });
    ok.close();
  });

  it('closes an authenticated connection that sends garbage, telling it why', async () => {
    const before = accepted.length;
    const sock = tls.connect({ host: '127.0.0.1', port: listener.port, ca: ca.cert, cert: client.cert, key: client.key, minVersion: 'TLSv1.3' });
    const reader = new FrameReader();
    const frames: unknown[] = [];
    const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
    sock.on('data', (d: Buffer) => frames.push(...reader.push(d)));
    sock.on('error', () => {});
    sock.once('secureConnect', () => sock.write(Buffer.concat([encodeFrame({ fine: true }), Buffer.from([0, 0, 0, 5]), Buffer.from('{{{{{')])));
    await closed;
    expect(frames).toContainEqual({ welcome: 'client-1' });
    expect(frames).toContainEqual({ $close: expect.objectContaining({ code: 'BAD_FRAME' }) });
    expect(await accepted[before]!.closed).toMatchObject({ code: 'BAD_FRAME' });
  });

  it('drops non-TLS garbage and a silent TCP client within the handshake timeout', async () => {
    const timeClose = (send?: string) =>
      new Promise<number>((resolve) => {
        const t0 = Date.now();
        const s = net.connect(listener.port, '127.0.0.1', () => send && s.write(send));
        s.on('error', () => {});
        s.on('data', () => {});
        s.on('close', () => resolve(Date.now() - t0));
      });
    const [garbage, silent] = await Promise.all([timeClose('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), timeClose()]);
    expect(garbage).toBeLessThan(1000);
    expect(silent).toBeGreaterThanOrEqual(250);
    expect(silent).toBeLessThan(1500);
  });

  it('closes a channel that receives no frame for idleTimeoutMs', async () => {
    const before = accepted.length;
    const ch = await connect({ ...clientOpts(), idleTimeoutMs: 200 });
    const closed = closedOf(ch);
    const t0 = Date.now();
    expect(await next(ch.frames[Symbol.asyncIterator]())).toEqual({ welcome: 'client-1' });
    expect(await closed).toMatchObject({ code: 'IDLE_TIMEOUT' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(await accepted[before]!.closed).toMatchObject({ code: 'IDLE_TIMEOUT', remote: true });
  });

  it('a client gives up on a server that never completes the handshake', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      await expect(connect({ ...clientOpts(), port, handshakeTimeoutMs: 200 })).rejects.toMatchObject({ code: 'HANDSHAKE_TIMEOUT' });
    } finally {
      silent.close();
      // close() waits for connections; the client destroyed its socket already.
    }
  });
});
