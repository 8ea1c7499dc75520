// The BUILT virtkitd (run `pnpm build` first: this uses packages/daemon/dist), spawned as a
// separate process with a temp config and PKI; clients are RemoteConnections from
// connectRemote and the built virtkit command.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainEvent } from '@virtkit/core';
import { connectRemote, type RemoteConnection } from '@virtkit/rpc';
import { connect as dialTls, initCa, issueClient, issueServer } from '@virtkit/transport-tls';
import { parseDaemonConfig } from '../src/config.js';
import { failure } from '../../rpc/test/failure.js';
import { logged, logMatch, spawnDaemon, type RunningDaemon } from './spawn.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', '..', 'cli', 'bin', 'virtkit.js');
const tmp = mkdtempSync(join(tmpdir(), 'virtkitd-test-'));
const pki = join(tmp, 'pki');
const web1 = { name: 'web1', memoryMiB: 256, vcpus: 1, os: { type: 'hvm' } };

interface Daemon extends RunningDaemon {
  port: number;
}

async function startDaemon(name: string, pkiExtra: Record<string, string> = {}): Promise<Daemon> {
  const config = join(tmp, `${name}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      listen: [{ host: '127.0.0.1', port: 0 }],
      unix: { admin: false, readOnly: false },
      pki: { ca: 'pki/ca-cert.pem', cert: 'pki/server-cert.pem', key: 'pki/server-key.pem', ...pkiExtra },
      host: { stateRoot: `state-${name}`, runtimeRoot: `run-${name}` },
      access: {
        identities: [
          { match: { cn: 'admin' }, role: 'admin' },
          { match: { cn: 'viewer' }, role: 'read-only' },
          { match: { cn: 'op' }, role: 'operator', domains: 'web*' },
        ],
      },
    }),
  );
  const d = spawnDaemon(config, tmp);
  const m = await logMatch(d, /"event":"listen"[^\n]*"port":(\d+)/);
  return { ...d, port: Number(m[1]) };
}

const creds = (user: string) => ({ ca: join(pki, 'ca-cert.pem'), cert: join(pki, 'clients', `${user}-cert.pem`), key: join(pki, 'clients', `${user}-key.pem`) });

function virtkit(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: tmp, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  await initCa(pki);
  await issueServer(pki, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  for (const cn of ['admin', 'viewer', 'op', 'stranger']) await issueClient(pki, { commonName: cn });
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('certificate revocation', () => {
  it('refuses a client certificate revoked with virtkit pki revoke-client, and serves the others', async () => {
    await issueClient(pki, { commonName: 'gone' });
    const r = await virtkit(['pki', 'revoke-client', 'gone', '--dir', pki], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Revoked gone \(serial [0-9a-f]+, SHA-256 fingerprint [0-9A-F:]+\)\nRevocation list: .*crl\.pem \(1 revoked\)/);
    const d = await startDaemon('crl', { crl: 'pki/crl.pem' });
    try {
      await logged(d, /"event":"crl"/);
      const uri = `test+tls://127.0.0.1:${d.port}/default`;
      const e = await failure(connectRemote(uri, { ...creds('gone'), keepaliveMs: 0 }));
      expect(e.code).toBe('IO_ERROR');
      const admin = await connectRemote(uri, { ...creds('admin'), keepaliveMs: 0 });
      expect((await admin.info('test')).state).toBe('running');
      admin.close();
    } finally {
      d.child.kill('SIGTERM');
      await d.exit;
    }
  });
});

describe('config', () => {
  it('names the field at fault', () => {
    expect(() => parseDaemonConfig({ listen: [{ host: 'h', port: 70000 }] }, '/x.json')).toThrow(/\/listen\/0\/port: must be an integer/);
    expect(() => parseDaemonConfig({ access: { identities: [{ match: { cn: 'a' }, role: 'god' }] } }, '/x.json')).toThrow(/\/access\/identities\/0\/role: must be one of/);
    expect(() => parseDaemonConfig({ bogus: 1 }, '/x.json')).toThrow(/\/bogus: unknown property/);
    expect(parseDaemonConfig({}, undefined).listen).toEqual([{ host: '127.0.0.1', port: 16515 }]);
    expect(() => parseDaemonConfig({ unix: { admin: 3 } }, '/x.json')).toThrow(/\/unix\/admin: must be a socket path or false/);
    expect(() => parseDaemonConfig({ unix: { other: 'x' } }, '/x.json')).toThrow(/\/unix\/other: unknown property/);
    expect(() => parseDaemonConfig({ listen: [], unix: { admin: false, readOnly: false } }, '/x.json')).toThrow(/\/listen: .*nothing to listen on/);
    expect(parseDaemonConfig({ unix: { admin: 'a.sock', readOnly: false } }, '/etc/x.json').unix).toEqual({ admin: '/etc/a.sock', readOnly: false });
    expect(parseDaemonConfig({}, undefined).unix.admin).toMatch(/\/virtkitd-admin\.sock$/);
    expect(parseDaemonConfig({ limits: { maxCallsPerConnection: 8 } }, undefined).limits).toEqual({ maxCallsPerConnection: 8 });
    expect(parseDaemonConfig({ pki: { crl: 'revoked.pem' } }, '/etc/virtkit/d.json').pki.crl).toEqual({ path: '/etc/virtkit/revoked.pem', required: true });
    expect(parseDaemonConfig({}, undefined).pki.crl).toMatchObject({ path: expect.stringMatching(/\/crl\.pem$/), required: false });
    // Beside the CA certificate, wherever pki.ca points (where revoke-client --dir writes it).
    expect(parseDaemonConfig({ pki: { ca: '/srv/pki/ca-cert.pem' } }, '/etc/x.json').pki.crl).toEqual({ path: '/srv/pki/crl.pem', required: false });
    expect(() => parseDaemonConfig({ limits: { maxCallsPerConnection: 0 } }, '/x.json')).toThrow(/\/limits\/maxCallsPerConnection: must be an integer/);
  });
});

describe('virtkitd', () => {
  let d: Daemon;
  let uri: string;
  const open: RemoteConnection[] = [];
  const dial = async (user: string) => {
    const r = await connectRemote(uri, { ...creds(user), keepaliveMs: 0 });
    open.push(r);
    return r;
  };

  beforeAll(async () => {
    d = await startDaemon('main');
    uri = `test+tls://127.0.0.1:${d.port}/default`;
  });
  afterAll(() => {
    for (const r of open) r.close();
    d.child.kill('SIGKILL');
  });

  it('serves an admin the whole lifecycle, with events', async () => {
    const admin = await dial('admin');
    expect(admin.uri).toBe('test:///default');
    const events = admin.events();
    expect(await admin.define(web1)).toMatchObject({ name: 'web1', state: 'shut-off' });
    await admin.start('web1');
    await admin.suspend('web1');
    await admin.resume('web1');
    expect(await admin.info('web1')).toMatchObject({ state: 'running', vcpus: 1 });
    await admin.shutdown('web1');
    expect(await admin.info('web1')).toMatchObject({ state: 'shut-off' });
    const got: DomainEvent[] = [];
    for await (const e of events) {
      got.push(e);
      if (got.length === 5) break;
    }
    expect(got.map((e) => e.kind)).toEqual(['defined', 'started', 'suspended', 'resumed', 'stopped']);
    // the replay that stops gives the same, by seq
    expect((await admin.eventsSince(got[0]!.seq - 1)).map((e) => e.seq)).toEqual(got.map((e) => e.seq));
  });

  it('lets a read-only client list but not start, naming the permission', async () => {
    const viewer = await dial('viewer');
    expect((await viewer.listDomains({ all: true })).map((x) => x.name)).toContain('web1');
    const e = await failure(viewer.start('web1'));
    expect(e.code).toBe('ACCESS_DENIED');
    expect(e.message).toMatch(/access denied: start needs the "lifecycle" permission; CN=viewer .* read-only/);
    await logged(d, /"event":"call-denied"[^\n]*"cn":"viewer"/);
  });

  it('lets an operator drive only the domains matching its glob', async () => {
    const admin = await dial('admin');
    await admin.define({ ...web1, name: 'db1' });
    const op = await dial('op');
    expect(await op.start('web1')).toMatchObject({ state: 'running' });
    expect((await failure(op.start('db1'))).message).toMatch(/"lifecycle" permission.*matching "web\*"/);
    expect((await failure(op.undefine('web1'))).message).toMatch(/"admin" permission/);
    await op.destroy('web1');
  });

  it('denies every call of a certificate the policy does not name', async () => {
    const stranger = await dial('stranger');
    const e = await failure(stranger.listDomains());
    expect(e.message).toMatch(/access denied: listDomains needs the "read" permission; CN=stranger .* is not in the access policy/);
    expect((await failure(stranger.define(web1))).message).toMatch(/"admin" permission/);
    await logged(d, /"event":"peer-refused"[^\n]*"cn":"stranger"/);
  });

  it('serves the virtkit command on a +tls URI with the VIRTKIT_TLS_* certificates', async () => {
    const c = creds('admin');
    const r = await virtkit(['-c', `test+tls://127.0.0.1:${d.port}/default`, 'list', '--all'], { VIRTKIT_TLS_CA: c.ca, VIRTKIT_TLS_CERT: c.cert, VIRTKIT_TLS_KEY: c.key });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/web1/);
    expect(r.stdout).toMatch(/db1/);
    const ev = await virtkit(['-c', `test+tls://127.0.0.1:${d.port}/default`, '--json', 'events'], { VIRTKIT_TLS_CA: c.ca, VIRTKIT_TLS_CERT: c.cert, VIRTKIT_TLS_KEY: c.key });
    expect(ev.code).toBe(0);
    expect(ev.stdout.trim().split('\n').map((l) => JSON.parse(l).kind)).toContain('started');
  });

  it('ends a session that breaks the protocol with PROTOCOL_ERROR, and keeps serving others', async () => {
    const c = creds('admin');
    const [ca, cert, key] = [readFileSync(c.ca), readFileSync(c.cert), readFileSync(c.key)];
    const session = async (features: string[]) => {
      const ch = await dialTls({ host: '127.0.0.1', port: d.port, ca, cert, key });
      const it = ch.frames[Symbol.asyncIterator]();
      await ch.send({ t: 'hello', versions: [1], features, node: 'test:///default' });
      expect((await it.next()).value).toMatchObject({ t: 'welcome', features });
      return { ch, next: async () => (await it.next()).value as Record<string, unknown> | undefined };
    };
    // A stream that does not exist: that stream is refused, the session goes on.
    const a = await session(['events-resume', 'streams']);
    await a.ch.send({ t: 'data', s: 99, d: 'aGk=' });
    expect(await a.next()).toEqual({ t: 'close', s: 99, code: 'PROTOCOL_ERROR', message: 'protocol error: no stream 99' });
    // Garbage: the session ends, saying why.
    await a.ch.send([1, 2, 3]);
    expect(await a.next()).toEqual({ t: 'abort', code: 'PROTOCOL_ERROR', message: 'protocol error: a message must be a JSON object' });
    expect(await a.next()).toBeUndefined();
    // A stream open without the negotiated feature.
    const b = await session(['events-resume']);
    await b.ch.send({ t: 'call', id: 1, method: 'console', params: ['web1'] });
    expect(await b.next()).toMatchObject({ t: 'error', id: 1, code: 'PROTOCOL_ERROR', message: expect.stringMatching(/"streams" feature was not negotiated/) });
    b.ch.close();
    // Others are served.
    expect((await dial('admin')).features).toEqual(['events-resume', 'streams', 'cancel', 'progress']);
  });

  it('logs peers by subject and fingerprint, never key material', async () => {
    await logged(d, /"event":"peer-connected"[^\n]*"cn":"admin","fingerprint256":"[0-9A-F:]{95}","role":"admin"/);
    const log = d.log();
    expect(log).not.toMatch(/PRIVATE KEY/);
    for (const line of log.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  });

  it('stops on SIGTERM: exit 0, shutdown logged', async () => {
    d.child.kill('SIGTERM');
    expect(await d.exit).toEqual({ code: 0, signal: null });
    expect(d.log()).toMatch(/"event":"shutdown","signal":"SIGTERM"/);
  });
});

describe('virtkitd killed during a call', () => {
  it('fails the call with IO_ERROR', async () => {
    const d = await startDaemon('killed');
    const admin = await connectRemote(`test+tls://127.0.0.1:${d.port}/default`, { ...creds('admin'), keepaliveMs: 0 });
    try {
      await admin.define({ ...web1, name: 'slow', driver: { test: { bootDelayMs: 30_000 } } });
      const call = failure(admin.start('slow'));
      await new Promise((r) => setTimeout(r, 300));
      d.child.kill('SIGKILL');
      const e = await call;
      expect(e.code).toBe('IO_ERROR');
      expect(e.message).toMatch(/connection to the daemon lost/);
    } finally {
      admin.close();
      d.child.kill('SIGKILL');
    }
  });
});
