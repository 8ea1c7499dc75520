// The BUILT virtkitd (run `pnpm build` first) serving its local unix sockets only (listen: [],
// so no PKI): socket modes, the admin and read-only roles, the CLI, a stale socket replaced.
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { connectRemote, type RemoteConnection } from '@virtkit/rpc';
import { connectUnix } from '@virtkit/transport-tls';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { failure } from '../../rpc/test/failure.js';
import { logged, logMatch, spawnDaemon, type RunningDaemon } from './spawn.js';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', '..', 'cli', 'bin', 'virtkit.js');
const tmp = mkdtempSync(join(tmpdir(), 'virtkitd-unix-'));
const sockDir = join(tmp, 'sock'); // created by the daemon
const adminSock = join(sockDir, 'admin.sock');
const roSock = join(sockDir, 'ro.sock');
const web1 = { name: 'web1', memoryMiB: 256, vcpus: 1, os: { type: 'hvm' } };

async function startDaemon(): Promise<RunningDaemon> {
  const config = join(tmp, 'virtkitd.json');
  writeFileSync(config, JSON.stringify({ listen: [], unix: { admin: adminSock, readOnly: roSock }, host: { stateRoot: 'state', runtimeRoot: 'run' } }));
  const d = spawnDaemon(config, tmp);
  await logMatch(d, /"event":"listen"[^\n]*"socket":"read-only"/);
  return d;
}

function virtkit(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // No VIRTKIT_TLS_* and no PKI: a unix URI needs no certificate.
    const env = { ...process.env, HOME: tmp, VIRTKIT_TLS_CA: '', VIRTKIT_TLS_CERT: '', VIRTKIT_TLS_KEY: '', ...extraEnv };
    const child = spawn(process.execPath, [CLI, ...args], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const open: RemoteConnection[] = [];
const dial = async (sock: string) => {
  const r = await connectRemote(`test+unix:///default?socket=${sock}`, { keepaliveMs: 0 });
  open.push(r);
  return r;
};

afterAll(() => {
  for (const r of open) r.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('virtkitd on unix sockets', () => {
  let d: RunningDaemon | undefined;
  afterAll(() => void d?.child.kill('SIGKILL'));

  it('creates the sockets with modes 0600 (admin) and 0666 (read-only)', async () => {
    d = await startDaemon();
    expect(lstatSync(adminSock).isSocket()).toBe(true);
    expect(lstatSync(adminSock).mode & 0o777).toBe(0o600);
    expect(lstatSync(roSock).mode & 0o777).toBe(0o666);
    expect(lstatSync(sockDir).mode & 0o777).toBe(0o755);
    expect(d.log()).toContain(`"event":"listen","unix":${JSON.stringify(adminSock)},"socket":"admin"`);
  });

  it('gives the admin socket the admin role', async () => {
    const admin = await dial(adminSock);
    expect(admin.uri).toBe('test:///default');
    expect(await admin.define(web1)).toMatchObject({ name: 'web1', state: 'shut-off' });
    await admin.start('web1');
    expect(await admin.info('web1')).toMatchObject({ state: 'running', vcpus: 1 });
    await logged(d!, /"event":"peer-connected"[^\n]*"transport":"unix","socket":"admin","role":"admin"/);
  });

  it('gives the read-only socket the read-only role', async () => {
    const viewer = await dial(roSock);
    expect((await viewer.listDomains({ all: true })).map((x) => x.name)).toContain('web1');
    const e = await failure(viewer.start('web1'));
    expect(e.code).toBe('ACCESS_DENIED');
    expect(e.message).toMatch(/access denied: start needs the "lifecycle" permission; .*unix socket.* read-only role/);
    await logged(d!, /"event":"call-denied"[^\n]*"socket":"read-only"/);
  });

  it('logs a session\'s first 20 denials, then counts the rest in its peer-closed line', async () => {
    const before = (d!.log().match(/"event":"call-denied"/g) ?? []).length;
    const viewer = await connectRemote(`test+unix:///default?socket=${roSock}`, { keepaliveMs: 0 });
    for (let i = 0; i < 30; i++) expect((await failure(viewer.start('web1'))).code).toBe('ACCESS_DENIED');
    viewer.close();
    await logged(d!, /"event":"peer-closed"[^\n]*"deniedCalls":30/);
    expect((d!.log().match(/"event":"call-denied"/g) ?? []).length - before).toBe(20);
  });

  it('serves exec on the admin socket (the virtkit command too) and denies it on the read-only one', async () => {
    const viewer = await dial(roSock);
    const e = await failure(viewer.exec('web1', ['true']));
    expect(e.code).toBe('ACCESS_DENIED');
    expect(e.message).toMatch(/access denied: exec needs the "admin" permission; .*read-only role/);
    const admin = await dial(adminSock);
    expect(Buffer.from((await admin.exec('web1', ['echo', 'over', 'unix'])).stdout).toString()).toBe('over unix\n');
    const r = await virtkit(['-c', `test+unix:///default?socket=${adminSock}`, 'exec', 'web1', '--', 'exit', '5']);
    expect([r.code, r.stderr]).toEqual([5, '']);
    const out = await virtkit(['-c', `test+unix:///default?socket=${adminSock}`, 'exec', 'web1', '--', 'echo', 'via', 'cli']);
    expect([out.code, out.stdout]).toEqual([0, 'via cli\n']);
  });

  it('a local URI goes through the running daemon (as virsh through libvirtd); embedded without one, or when asked', async () => {
    const admin = await connectRemote(`qemu+unix:///system?socket=${adminSock}`);
    open.push(admin);
    await admin.define({ name: 'routed', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' } });
    // The embedded runs get a node of their own under tmp (never this machine's /var/lib/virtkit).
    const config = join(tmp, 'cli-host.json');
    writeFileSync(config, JSON.stringify({ stateRoot: join(tmp, 'cli-state'), runtimeRoot: join(tmp, 'cli-run') }));
    const names = async (env: Record<string, string>) => {
      const r = await virtkit(['-c', 'qemu:///system', '--json', 'list', '--all'], { VIRTKIT_CONFIG: config, VIRTKIT_EMBEDDED: '', ...env });
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as Array<{ name: string }>).map((d) => d.name);
    };
    expect(await names({ VIRTKIT_DAEMON_SOCKET: adminSock })).toContain('routed');
    expect(await names({ VIRTKIT_DAEMON_SOCKET: adminSock, VIRTKIT_EMBEDDED: '1' })).not.toContain('routed');
    expect(await names({ VIRTKIT_DAEMON_SOCKET: join(tmp, 'no-daemon.sock') })).not.toContain('routed');
    await admin.undefine('routed');
  });

  it('virtkit --timeout cancels a start on the daemon (feature cancel): the domain stays off', async () => {
    const admin = await dial(adminSock);
    await admin.define({ ...web1, name: 'slowboot', driver: { test: { bootDelayMs: 1500 } } });
    const r = await virtkit(['-c', `test+unix:///default?socket=${adminSock}`, '--timeout', '300', 'start', 'slowboot']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/start slowboot did not finish within 300 ms \(--timeout\) and was cancelled/);
    // Had the daemon gone on, the boot would be over by now.
    await new Promise((res) => setTimeout(res, 1800));
    expect(await admin.info('slowboot')).toMatchObject({ state: 'shut-off' });
    await admin.undefine('slowboot');
  });

  it('lists every client\'s jobs (read) and cancels one by id (admin), from the API and the virtkit command', async () => {
    const admin = await dial(adminSock);
    const viewer = await dial(roSock);
    await admin.define({ ...web1, name: 'longboot', driver: { test: { bootDelayMs: 20_000 } } });
    const started = admin.start('longboot').catch((e: { code: string }) => e.code);
    let job: { id: number; domain: string; operation: string; state: string } | undefined;
    for (let i = 0; i < 100 && !job; i++) {
      job = (await viewer.listJobs()).find((j) => j.domain === 'longboot');
      if (!job) await new Promise((r) => setTimeout(r, 20));
    }
    expect(job).toMatchObject({ domain: 'longboot', operation: 'start', state: 'running' });
    const listed = await virtkit(['-c', `test+unix:///default?socket=${roSock}`, '--json', 'jobs']);
    expect(JSON.parse(listed.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ id: job!.id, domain: 'longboot', operation: 'start' })]));
    // Another client's job, whatever its domain: admin only.
    const denied = await failure(viewer.cancelJob(job!.id));
    expect(denied.message).toMatch(/access denied: cancelJob needs the "admin" permission/);
    const cancelled = await virtkit(['-c', `test+unix:///default?socket=${adminSock}`, 'cancel-job', String(job!.id)]);
    expect([cancelled.code, cancelled.stdout.trim()]).toEqual([0, `Job ${job!.id} cancelled`]);
    expect(await started).toBe('CANCELLED');
    expect(await admin.info('longboot')).toMatchObject({ state: 'shut-off' });
    expect(await admin.cancelJob(job!.id)).toBe(false);
    const none = await virtkit(['-c', `test+unix:///default?socket=${adminSock}`, 'cancel-job', String(job!.id)]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/NOT_FOUND: no job \d+ on test\+unix:/);
    await admin.undefine('longboot');
  });

  it('serves only its own nodes: a peer cannot make it open a path of its choosing', async () => {
    // test:///PATH would read a node document as root; a query string would open a new node.
    for (const uri of [`test+unix:///etc/shadow?socket=${roSock}`, `test+unix:///default?socket=${roSock}&x=1`]) {
      const e = await failure(connectRemote(uri, { keepaliveMs: 0 }));
      expect(e.code).toBe('NO_SUPPORT');
      expect(e.message).toMatch(/is not served by this daemon/);
      expect(e.message).not.toMatch(/root:/);
    }
    // The node as the hello names it, raw: only the canonical spelling is served (a stray '?'
    // or an escape would open another node each), and a hello that cannot be named back does
    // not take the daemon down.
    for (const hello of [{ node: 'test:///default?' }, { node: 'test:///%64efault' }, { node: 'test:///default#x' }, { node: 'x'.repeat(100_000) }]) {
      const ch = await connectUnix(roSock);
      const it = ch.frames[Symbol.asyncIterator]();
      await ch.send({ t: 'hello', versions: [1], features: [], ...hello });
      const answer = (await it.next()).value as { t: string; message: string };
      expect(answer.t).toBe('refuse');
      expect(answer.message.length).toBeLessThan(600);
      ch.close();
    }
    // No common version, named by an array nested 10,000 deep (written by hand: JSON.stringify
    // cannot): refused, not a crash.
    const raw = createConnection(roSock);
    await once(raw, 'connect');
    const json = Buffer.from(`{"t":"hello","node":"test:///default","versions":[${'['.repeat(10_000)}${']'.repeat(10_000)}]}`);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(json.length);
    raw.write(Buffer.concat([header, json]));
    let got = '';
    raw.setEncoding('latin1').on('data', (d: string) => (got += d));
    await once(raw, 'close');
    expect(got).toMatch(/"t":"refuse","code":"NO_SUPPORT","message":"no common protocol version: the server speaks 1, the client none it could name"/);
    expect(d!.child.exitCode).toBeNull();
    expect((await (await dial(roSock)).listDomains({ all: true })).length).toBeGreaterThan(0);
  });

  it('serves the virtkit command on a +unix URI without certificates', async () => {
    const r = await virtkit(['-c', `test+unix:///default?socket=${roSock}`, 'list', '--all']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/web1/);
  });

  it('refuses to start over a socket another daemon listens on, and replaces a stale one', async () => {
    // A second daemon while the first runs: the sockets are live, not stale.
    await expect(startDaemon()).rejects.toThrow(/another process is listening/);
    d!.child.kill('SIGKILL');
    await d!.exit;
    expect(existsSync(adminSock)).toBe(true); // left behind by the killed daemon
    d = await startDaemon();
    const admin = await dial(adminSock);
    expect((await admin.listDomains({ all: true })).map((x) => x.name)).not.toContain('web1'); // a new daemon, a fresh test node
    d.child.kill('SIGTERM');
    expect(await d.exit).toEqual({ code: 0, signal: null });
    expect(existsSync(adminSock)).toBe(false); // removed on a clean stop
  });
});
