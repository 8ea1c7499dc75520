// End to end over mutual TLS: the BUILT virtkitd (run `pnpm build` first) serves
// qemu:///system on 127.0.0.1 (port 0). An admin client drives a real tiny guest
// (scripts/build-test-guest.sh, TCG where KVM is not usable) through its lifecycle, with
// bigints intact over the wire and the events in order; a read-only client connected at the
// same time can see the domain but not destroy it. Then the serial console of a real guest
// through virtkitd (feature 'streams'): over TLS with connectRemote, with the virtkit command
// over +tls and +unix, denied to read-only and out-of-glob operator identities, closed when the
// domain is destroyed.
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtkitError, type DomainEvent } from '@virtkit/core';
import { connectRemote, type RemoteConnection } from '@virtkit/rpc';
import { hasGuest, qemuPids, repo, stopGuests, tinyVm, until as untilFor } from './guest.js';
import { logMatch, spawnDaemon, type RunningDaemon } from './spawn.js';
import { initCa, issueClient, issueServer } from '@virtkit/transport-tls';


// Short paths: a unix socket path must stay under 108 bytes.
const root = mkdtempSync('/tmp/vk-');
const pki = join(root, 'pki');
const NAME = `tls${process.pid % 100000}`;
const serialLog = join(root, `${NAME}.serial.log`);
const config = join(root, 'virtkitd.json');

const vm = (name: string) => tinyVm(root, name, { serialLog, driver: { qemu: { powerdownRetryMs: 300 } } });

const serial = () => {
  try {
    return readFileSync(serialLog, 'utf8');
  } catch {
    return '';
  }
};


const until = (what: string, f: () => boolean, ms = 30_000) => untilFor(what, f, ms, 25);

interface Daemon extends RunningDaemon {
  port: number;
}
let daemon: Daemon | undefined;
const remotes: RemoteConnection[] = [];

async function startDaemon(configFile = config): Promise<Daemon> {
  const d = spawnDaemon(configFile, root);
  const m = await logMatch(d, /"event":"listen"[^\n]*"port":(\d+)/, 15_000);
  return { ...d, port: Number(m[1]) };
}

const creds = (cn: string) => ({ ca: join(pki, 'ca-cert.pem'), cert: join(pki, 'clients', `${cn}-cert.pem`), key: join(pki, 'clients', `${cn}-key.pem`) });

const CLI = join(repo, 'packages', 'cli', 'bin', 'virtkit.js');

/** A virtkitd config serving qemu:///system on 127.0.0.1 (port 0), with these identities and optionally the admin unix socket. */
function writeConfig(file: string, o: { identities: unknown[]; adminSocket?: string }): void {
  writeFileSync(file, JSON.stringify({
    listen: [{ host: '127.0.0.1', port: 0 }],
    unix: { admin: o.adminSocket ?? false, readOnly: false },
    pki: { ca: 'pki/ca-cert.pem', cert: 'pki/server-cert.pem', key: 'pki/server-key.pem' },
    host: { stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue') },
    nodes: ['qemu:///system'],
    access: { identities: o.identities },
  }));
}

/**
 * `virtkit ARGS console NAME` with stdin a pipe: writes `input` once the console is attached,
 * waits until stdout shows `want`, then stops it with SIGINT (as Ctrl-C would).
 */
function cliConsole(args: string[], env: Record<string, string>, input: string, want: string): Promise<{ code: number | null; stdout: string; stderr: string; saw: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let saw = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    // Keep typing until the guest's echo shows up (the first line may arrive before the attach).
    const typing = setInterval(() => child.stdin.write(input), 500);
    child.stdin.write(input);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (!saw && stdout.includes(want)) {
        saw = true;
        clearInterval(typing);
        child.kill('SIGINT');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      clearInterval(typing);
      resolve({ code, stdout, stderr, saw });
    });
  });
}

/** Collects what a console stream says. */
function reader(sock: Duplex): { text: () => string; closed: Promise<void> } {
  let seen = '';
  sock.on('data', (d: Buffer) => (seen += d.toString('utf8')));
  sock.on('error', () => {});
  return { text: () => seen, closed: new Promise((resolve) => sock.once('close', () => resolve())) };
}

describe.skipIf(!hasGuest && !process.env.CI)('virtkitd serving qemu:///system over mutual TLS', () => {
  beforeAll(async () => {
    await initCa(pki);
    await issueServer(pki, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    for (const cn of ['admin', 'viewer', 'op']) await issueClient(pki, { commonName: cn });
  });

  afterAll(async () => {
    for (const r of remotes) r.close();
    if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) {
      daemon.child.kill('SIGKILL');
      await daemon.exit;
    }
    await stopGuests(root, [NAME]);
  });

  it('runs a real guest for an admin, and shows it to but keeps it from a read-only client', async () => {
    writeConfig(config, { identities: [{ match: { cn: 'admin' }, role: 'admin' }, { match: { cn: 'viewer' }, role: 'read-only' }] });
    daemon = await startDaemon();
    const uri = `qemu+tls://127.0.0.1:${daemon.port}/system`;
    const dial = async (cn: string) => {
      const r = await connectRemote(uri, { ...creds(cn), keepaliveMs: 0 });
      remotes.push(r);
      return r;
    };
    const admin = await dial('admin');
    const viewer = await dial('viewer');
    expect(admin.uri).toBe('qemu:///system');

    const events = admin.events();
    expect(await admin.define(vm(NAME))).toMatchObject({ name: NAME, state: 'shut-off' });
    expect(await admin.start(NAME)).toMatchObject({ state: 'running' });
    await until('the guest to be ready', () => serial().includes('VIRTKIT-GUEST-READY'));
    const pids = qemuPids(NAME);
    expect(pids).toHaveLength(1);
    const info = await admin.info(NAME);
    expect(info).toMatchObject({ state: 'running', vcpus: 1 });
    expect(typeof info.cpuTimeNs).toBe('bigint');
    expect(typeof info.memoryKib).toBe('bigint');
    expect(info.memoryKib).toBe(128n * 1024n);
    expect(info.cpuTimeNs).toBeGreaterThan(0n);

    // The read-only client, connected all along, sees the domain running but may not destroy it.
    expect((await viewer.listDomains()).find((d) => d.name === NAME)).toMatchObject({ state: 'running' });
    expect(await viewer.info(NAME)).toMatchObject({ state: 'running' });
    let denied: unknown;
    await viewer.destroy(NAME).catch((e: unknown) => (denied = e));
    expect(VirtkitError.is(denied)).toBe(true);
    expect(denied).toMatchObject({ code: 'ACCESS_DENIED' });
    expect(qemuPids(NAME)).toEqual(pids);
    expect(await admin.info(NAME)).toMatchObject({ state: 'running' });

    expect(await admin.suspend(NAME)).toMatchObject({ state: 'paused' });
    expect(await admin.resume(NAME)).toMatchObject({ state: 'running' });
    expect(await admin.shutdown(NAME, { timeoutMs: 20_000 })).toEqual({ state: 'shut-off', reason: 'shutdown' });
    expect(await admin.info(NAME)).toMatchObject({ state: 'shut-off' });

    const got: DomainEvent[] = [];
    for await (const e of events) {
      if (e.domain !== NAME) continue;
      got.push(e);
      if (got.length === 5) break;
    }
    expect(got.map((e) => e.kind)).toEqual(['defined', 'started', 'suspended', 'resumed', 'stopped']);
    for (let i = 1; i < got.length; i++) expect(got[i]!.seq).toBeGreaterThan(got[i - 1]!.seq);
    await until('the QEMU to exit', () => qemuPids(NAME).length === 0, 5000);

    for (const r of remotes) r.close();
    daemon.child.kill('SIGTERM');
    expect(await daemon.exit, daemon.log()).toEqual({ code: 0, signal: null });
  }, 60_000);

  it('proxies the serial console of a real guest: bytes both ways, operator-level, closed with the domain', async () => {
    const NAME2 = `con${process.pid % 100000}`;
    const adminSock = join(root, 'admin.sock');
    const config2 = join(root, 'virtkitd-console.json');
    writeConfig(config2, {
      identities: [{ match: { cn: 'admin' }, role: 'admin' }, { match: { cn: 'viewer' }, role: 'read-only' }, { match: { cn: 'op' }, role: 'operator', domains: 'web*' }],
      adminSocket: adminSock,
    });
    daemon = await startDaemon(config2);
    const uri = `qemu+tls://127.0.0.1:${daemon.port}/system`;
    const dial = async (cn: string) => {
      const r = await connectRemote(uri, { ...creds(cn), keepaliveMs: 0 });
      remotes.push(r);
      return r;
    };
    const [admin, viewer, op] = [await dial('admin'), await dial('viewer'), await dial('op')];
    expect(admin.features).toContain('streams');
    await admin.define(tinyVm(root, NAME2));
    await admin.start(NAME2);
    const a = await admin.console(NAME2);
    const con = reader(a);
    await until('the guest marker on the remote console', () => con.text().includes('VIRTKIT-GUEST-READY'), 60_000);
    // The guest's tty echoes what it is sent: these bytes went through virtkitd into QEMU and back.
    a.write('vk-echo-1\n');
    await until('the echo', () => con.text().includes('vk-echo-1'), 10_000);

    // Read-only and out-of-glob operator identities may not open it.
    for (const who of [viewer, op]) {
      const e = await who.console(NAME2).catch((x: unknown) => x);
      expect(VirtkitError.is(e) && e.code, String(e)).toBe('ACCESS_DENIED');
      expect((e as Error).message).toMatch(/console needs the "lifecycle" permission/);
    }

    // QEMU serves one console client at a time: the next ones below only get an echo because
    // virtkitd closed its console socket when the stream (then the CLI's session) went away.
    a.destroy();
    await con.closed;
    const logged = (re: RegExp) => until(`a log line ${re}`, () => re.test(daemon!.log()), 5000);
    await logged(new RegExp(`"event":"stream-open","cn":"admin"[^\\n]*"method":"console","domain":"${NAME2}","stream":1`));
    await logged(/"event":"stream-closed","cn":"admin"[^\n]*"stream":1,"reason":"peer-closed"/).catch((e: Error) => {
      throw new Error(`${e.message}\n${daemon!.log().split('\n').filter((l) => l.includes('stream')).join('\n')}`);
    });
    const tls = { VIRTKIT_TLS_CA: creds('admin').ca, VIRTKIT_TLS_CERT: creds('admin').cert, VIRTKIT_TLS_KEY: creds('admin').key };
    const viaTls = await cliConsole(['-c', uri, 'console', NAME2], tls, 'vk-cli-tls\n', 'vk-cli-tls');
    expect(viaTls.saw, viaTls.stderr).toBe(true);
    expect(viaTls.code).not.toBeNull();
    const unixUri = `qemu+unix:///system?socket=${adminSock}`;
    const viaUnix = await cliConsole(['-c', unixUri, 'console', NAME2], {}, 'vk-cli-unix\n', 'vk-cli-unix');
    expect(viaUnix.saw, viaUnix.stderr).toBe(true);
    const caps = await cliConsole(['-c', unixUri, 'capabilities'], {}, '', 'Operations');
    expect(caps.saw, caps.stderr).toBe(true);
    expect(caps.stdout).toMatch(/Driver:\s+qemu/);

    // Destroying the domain ends the stream.
    const b = await admin.console(NAME2);
    const con2 = reader(b);
    b.write('vk-echo-2\n');
    await until('the echo on the new stream', () => con2.text().includes('vk-echo-2'), 10_000);
    await admin.destroy(NAME2);
    await con2.closed;
    expect(b.destroyed).toBe(true);
    await logged(/"event":"stream-closed","cn":"admin"[^\n]*"stream":2,"reason":"source-closed"/);
    await admin.undefine(NAME2);

    for (const r of remotes) r.close();
    daemon.child.kill('SIGTERM');
    expect(await daemon.exit, daemon.log()).toEqual({ code: 0, signal: null });
  }, 120_000);
});
