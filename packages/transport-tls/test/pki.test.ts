import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCrl, initCa, issueClient, issueServer, PkiError, revokeCertificate } from '../src/pki.js';
import { type Channel, connect, listen } from '../src/tls.js';

const root = mkdtempSync(join(tmpdir(), 'virtkit-pki-test-'));
const dir = join(root, 'pki');
const other = join(root, 'other-pki');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o777;
const read = (p: string) => readFileSync(p, 'utf8');
const text = (p: string) => execFileSync('openssl', ['x509', '-in', p, '-noout', '-text'], { encoding: 'utf8' });

beforeAll(async () => {
  await initCa(dir);
  await issueServer(dir, { dnsNames: ['localhost', 'node1.example'], ips: ['127.0.0.1', '::1'] });
  await issueClient(dir, { commonName: 'alice' });
  await initCa(other, { commonName: 'other CA' });
  await issueClient(other, { commonName: 'mallory' });
});

describe('initCa', () => {
  it('writes the CA certificate 0644 and the key 0600', () => {
    expect(mode(join(dir, 'ca-cert.pem'))).toBe(0o644);
    expect(mode(join(dir, 'ca-key.pem'))).toBe(0o600);
    expect(read(join(dir, 'ca-key.pem'))).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('makes a self-signed CA certificate with the right extensions', () => {
    const ca = new X509Certificate(read(join(dir, 'ca-cert.pem')));
    expect(ca.ca).toBe(true);
    expect(ca.subject).toBe('CN=virtkit CA');
    expect(ca.checkIssued(ca)).toBe(true);
    expect(ca.verify(ca.publicKey)).toBe(true);
    const t = text(join(dir, 'ca-cert.pem'));
    expect(t).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
    expect(t).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(t).toMatch(/ecdsa-with-SHA256/);
  });

  it('refuses to overwrite an existing CA, naming the file', async () => {
    const before = read(join(dir, 'ca-key.pem'));
    await expect(initCa(dir)).rejects.toThrow(/ca-cert\.pem/);
    expect(read(join(dir, 'ca-key.pem'))).toBe(before);
  });

  it('returns the paths and the SHA-256 fingerprint', async () => {
    const d = join(root, 'third');
    const r = await initCa(d, { commonName: 'x', days: 1 });
    expect(r.cert).toBe(join(d, 'ca-cert.pem'));
    expect(r.key).toBe(join(d, 'ca-key.pem'));
    expect(r.fingerprint).toBe(new X509Certificate(read(r.cert)).fingerprint256);
  });
});

describe('issueServer / issueClient', () => {
  it('writes certificates 0644 and keys 0600', () => {
    for (const f of ['server-cert.pem', 'clients/alice-cert.pem']) expect(mode(join(dir, f))).toBe(0o644);
    for (const f of ['server-key.pem', 'clients/alice-key.pem']) expect(mode(join(dir, f))).toBe(0o600);
  });

  it('issues a server certificate that verifies against the CA, with SANs and serverAuth', () => {
    const ca = new X509Certificate(read(join(dir, 'ca-cert.pem')));
    const cert = new X509Certificate(read(join(dir, 'server-cert.pem')));
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.subject).toBe('CN=localhost');
    expect(cert.subjectAltName).toContain('DNS:localhost');
    expect(cert.subjectAltName).toContain('DNS:node1.example');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
    const t = text(join(dir, 'server-cert.pem'));
    expect(t).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication\n/);
    expect(t).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    expect(t).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca-cert.pem'), '-purpose', 'sslserver', join(dir, 'server-cert.pem')]);
  });

  it('issues a client certificate with clientAuth and a random positive 16-byte serial', () => {
    const ca = new X509Certificate(read(join(dir, 'ca-cert.pem')));
    const cert = new X509Certificate(read(join(dir, 'clients/alice-cert.pem')));
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(cert.subject).toBe('CN=alice');
    expect(text(join(dir, 'clients/alice-cert.pem'))).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication\n/);
    expect(cert.serialNumber).toMatch(/^[4-7][0-9A-F]{31}$/);
    expect(cert.serialNumber).not.toBe(new X509Certificate(read(join(dir, 'server-cert.pem'))).serialNumber);
    execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca-cert.pem'), '-purpose', 'sslclient', join(dir, 'clients/alice-cert.pem')]);
  });

  it('validates names, naming the argument', async () => {
    await expect(issueClient(dir, { commonName: '../evil' })).rejects.toThrow(/commonName/);
    await expect(issueClient(dir, { commonName: 'a b' })).rejects.toThrow(/commonName/);
    await expect(issueServer(dir, { dnsNames: ['-bad.example'] })).rejects.toThrow(/dnsNames/);
    await expect(issueServer(dir, { dnsNames: ['a..b'] })).rejects.toThrow(/dnsNames/);
    await expect(issueServer(dir, { ips: ['300.1.1.1'] })).rejects.toThrow(/ips/);
    await expect(issueServer(dir, {})).rejects.toThrow(/at least one/);
    await expect(issueClient(dir, { commonName: 'bob', days: 0 })).rejects.toThrow(/days/);
    await expect(issueClient(dir, { commonName: 'a b' })).rejects.toBeInstanceOf(PkiError);
  });

  it('fails clearly without a CA, and does not overwrite an issued certificate', async () => {
    await expect(issueClient(join(root, 'nothing'), { commonName: 'bob' })).rejects.toThrow(/no CA in .*ca-cert\.pem/);
    await expect(issueClient(dir, { commonName: 'alice' })).rejects.toThrow(/alice-(cert|key)\.pem already exists/);
  });
});

describe('mutual TLS with the issued certificates', () => {
  /** Trusts the CA of `dir`; presents `d`/`name`-cert.pem. */
  const creds = (d: string, name: string) => ({ ca: read(join(dir, 'ca-cert.pem')), cert: read(join(d, `${name}-cert.pem`)), key: read(join(d, `${name}-key.pem`)) });

  it('a frame round trip works between the server and an issued client', async () => {
    const server = await listen({
      host: '127.0.0.1',
      port: 0,
      ...creds(dir, 'server'),
      async onChannel(ch) {
        for await (const msg of ch.frames) await ch.send({ echo: msg, cn: ch.peer.subject.CN });
      },
    });
    let ch: Channel | undefined;
    try {
      ch = await connect({ host: '127.0.0.1', port: server.port, ...creds(join(dir, 'clients'), 'alice') });
      expect(ch.peer.fingerprint256).toBe(new X509Certificate(read(join(dir, 'server-cert.pem'))).fingerprint256);
      await ch.send({ hello: 1 });
      const it = ch.frames[Symbol.asyncIterator]();
      const r = await it.next();
      expect(r.value).toEqual({ echo: { hello: 1 }, cn: 'alice' });
    } finally {
      ch?.close();
      await server.close();
    }
  });

  it('refuses a client certificate from another CA', async () => {
    let accepted = 0;
    const server = await listen({
      host: '127.0.0.1',
      port: 0,
      ...creds(dir, 'server'),
      onChannel() {
        accepted++;
      },
    });
    try {
      const client = creds(join(other, 'clients'), 'mallory');
      let ch: Channel | undefined;
      try {
        ch = await connect({ host: '127.0.0.1', port: server.port, ...client });
      } catch {
        // refused during the handshake: fine
      }
      if (ch) {
        // TLS 1.3: the server's refusal arrives after connect() resolved; no frame ever comes.
        const frames: unknown[] = [];
        for await (const f of ch.frames) frames.push(f);
        expect(frames).toEqual([]);
      }
      expect(accepted).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('refuses a revoked client certificate once the listener has the CRL; others are served', async () => {
    await issueClient(dir, { commonName: 'bob' });
    await issueClient(dir, { commonName: 'carol' });
    const first = await revokeCertificate(dir, { commonName: 'bob' });
    const again = await revokeCertificate(dir, { commonName: 'bob' });
    expect(again).toMatchObject({ crl: join(dir, 'crl.pem'), serial: first.serial, revoked: 1 });
    expect(mode(join(dir, 'crl.pem'))).toBe(0o644);
    expect(execFileSync('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-noout', '-text'], { encoding: 'utf8' }).toUpperCase()).toContain(first.serial.toUpperCase());
    await expect(revokeCertificate(dir, { certFile: join(other, 'clients', 'mallory-cert.pem') })).rejects.toThrow(/was not issued by the CA in/);
    let accepted: string[] = [];
    const server = await listen({
      host: '127.0.0.1',
      port: 0,
      ...creds(dir, 'server'),
      crl: read(join(dir, 'crl.pem')),
      async onChannel(ch) {
        accepted.push(ch.peer.subject.CN!);
        for await (const msg of ch.frames) await ch.send({ echo: msg });
      },
    });
    try {
      const frames = async (name: string) => {
        let ch: Channel;
        try {
          ch = await connect({ host: '127.0.0.1', port: server.port, ...creds(join(dir, 'clients'), name) });
        } catch {
          return []; // refused during the handshake
        }
        await ch.send({ hi: name }).catch(() => {});
        const got: unknown[] = [];
        for await (const f of ch.frames) {
          got.push(f);
          ch.close();
        }
        return got;
      };
      expect(await frames('bob')).toEqual([]);
      expect(await frames('carol')).toEqual([{ echo: { hi: 'carol' } }]);
      expect(accepted).toEqual(['carol']);
    } finally {
      await server.close();
    }
  });

  it('checkCrl accepts the CA\'s current list and names what is wrong with any other', async () => {
    const crl = read(join(dir, 'crl.pem'));
    await expect(checkCrl(crl, read(join(dir, 'ca-cert.pem')))).resolves.toBeUndefined();
    await expect(checkCrl(crl, read(join(other, 'ca-cert.pem')))).rejects.toThrow(/issued by "CN=virtkit CA", not by the CA "CN=other CA"/);
    await expect(checkCrl(crl, read(join(dir, 'ca-cert.pem')), new Date(Date.now() + 20 * 365 * 86_400_000))).rejects.toThrow(/the revocation list expired on/);
    await expect(checkCrl('not a crl', read(join(dir, 'ca-cert.pem')))).rejects.toThrow(/not a revocation list/);
  });
});
