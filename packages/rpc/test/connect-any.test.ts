// One entry point, one API: `connect` from @virtkit/rpc opens a node in this process or one
// served over a unix socket (here served in-process by serveConnection over
// @virtkit/transport-tls's real unix transport), and the same management code, typed against
// DomainConnection, runs on both.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { Connection, Host, type DomainConnection, type DomainEvent } from '@virtkit/core';
import { listenUnix } from '@virtkit/transport-tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, RemoteConnection, serveConnection } from '../src/index.js';

const repoRoot = join(import.meta.dirname, '..', '..', '..');

/** Management code that knows nothing of where the node is. */
async function tour(conn: DomainConnection, name: string) {
  const seen: DomainEvent[] = [];
  const stop = conn.onEvent((e) => seen.push(e));
  await conn.define({ name, memoryMiB: 128, vcpus: 1, os: { type: 'hvm' } });
  const states = [(await conn.start(name)).state, (await conn.suspend(name)).state, (await conn.resume(name)).state, (await conn.destroy(name)).state];
  const supportsSuspend = await conn.supports('suspend');
  const driver = (await conn.capabilities()).driver.name;
  const echoed = await conn.exec(name, ['echo', 'hi']).catch((e: { code: string }) => e.code); // not running: refused the same way
  await conn.undefine(name);
  const listed = (await conn.listDomains({ all: true })).map((d) => d.name);
  for (let i = 0; i < 100 && seen.filter((e) => e.domain === name).length < 6; i++) await new Promise((r) => setTimeout(r, 10));
  stop();
  return { states, supportsSuspend, driver, echoed, listed, kinds: seen.filter((e) => e.domain === name).map((e) => e.kind) };
}

describe('connect(uri) for every URI', () => {
  const tmp = mkdtempSync('/tmp/vk-');
  const socket = join(tmp, 'admin.sock');
  let host: Host;
  let served: Connection;
  let listener: Awaited<ReturnType<typeof listenUnix>>;
  const hostOptions = { stateRoot: join(tmp, 'state'), runtimeRoot: join(tmp, 'run'), cacheDir: join(repoRoot, '.cache', 'glue'), pluginSearch: [join(repoRoot, 'packages', 'cli')] };

  beforeAll(async () => {
    host = await new Host(hostOptions).init();
    served = (await connect('test:///default', { host })) as Connection;
    listener = await listenUnix({ path: socket, mode: 0o600, identity: 'admin', onChannel: (ch) => void serveConnection(ch, served) });
  });
  afterAll(async () => {
    await listener?.close();
    await served?.close();
    await host?.close();
  });

  it('opens a local URI in this process and a +unix URI through the daemon side, with the same API and results', async () => {
    const local = await connect('test:///default', { host });
    const remote = await connect(`test+unix:///default?socket=${socket}`);
    expect(local).toBeInstanceOf(Connection);
    expect(remote).toBeInstanceOf(RemoteConnection);
    const a = await tour(local, 'here');
    const b = await tour(remote, 'there');
    expect(a).toEqual({ ...b, listed: a.listed });
    expect(a.states).toEqual(['running', 'paused', 'running', 'shut-off']);
    expect(a.kinds).toEqual(['defined', 'started', 'suspended', 'resumed', 'stopped', 'undefined']);
    expect([a.supportsSuspend, a.driver, a.echoed]).toEqual([true, 'test', 'OPERATION_INVALID']);
    expect(b.listed).not.toContain('there');
    await local.close();
    await remote.close();
  });

  it('a remote start reports the daemon\'s progress, and its signal cancels the job on the daemon', async () => {
    const remote = (await connect(`test+unix:///default?socket=${socket}`)) as RemoteConnection;
    expect(remote.features).toEqual(expect.arrayContaining(['cancel', 'progress']));
    await remote.define({ name: 'slow', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' }, driver: { test: { bootDelayMs: 1000 } } });
    const seen: number[] = [];
    expect((await remote.start('slow', { onProgress: (p) => seen.push(p) })).state).toBe('running');
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    await remote.destroy('slow');

    // Cancelled at the first progress report (after a tenth of a 10 s boot): the job stops there,
    // the domain stays off.
    await remote.define({ name: 'slow', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' }, driver: { test: { bootDelayMs: 10_000 } } });
    const ac = new AbortController();
    const t0 = Date.now();
    const e = await remote.start('slow', { signal: ac.signal, onProgress: () => ac.abort() }).catch((x: { code: string; message: string }) => x);
    expect(e).toMatchObject({ code: 'CANCELLED', message: expect.stringMatching(/^start slow cancelled/) }); // the daemon's job, not 'cancelled here'
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await served.info('slow')).state).toBe('shut-off');
    expect(served.listJobs()).toEqual([]);
    await remote.undefine('slow');
    await remote.close();
  });

  it('a client that goes away leaves its lifecycle job running to its end (as libvirt and Incus do)', async () => {
    const remote = await connect(`test+unix:///default?socket=${socket}`);
    await remote.define({ name: 'orphan', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' }, driver: { test: { bootDelayMs: 400 } } });
    const started = remote.start('orphan').catch((x: { code: string }) => x.code);
    await new Promise((r) => setTimeout(r, 100));
    await remote.close();
    expect(await started).toBe('OPERATION_INVALID'); // the connection is closed
    for (let i = 0; i < 100 && (await served.info('orphan')).state !== 'running'; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await served.info('orphan')).state).toBe('running');
    await served.destroy('orphan');
    await served.undefine('orphan');
  });

  it('a remote exec stops on the daemon when its signal aborts', async () => {
    const remote = await connect(`test+unix:///default?socket=${socket}`);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const e = await remote.exec('test', ['sleep', '5000'], { signal: ac.signal }).catch((x: { code: string; message: string }) => x);
    expect(e).toMatchObject({ code: 'CANCELLED' });
    expect(Date.now() - t0).toBeLessThan(2000);
    // The session goes on.
    expect((await remote.exec('test', ['echo', 'after'])).exitCode).toBe(0);
    await remote.close();
  });

  it('with a daemon that cannot cancel, the signal rejects at once and says the operation goes on there', async () => {
    const remote = (await connect(`test+unix:///default?socket=${socket}`, { features: ['events-resume', 'streams'] })) as RemoteConnection;
    expect(remote.features).not.toContain('cancel');
    await remote.define({ name: 'old-daemon', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' }, driver: { test: { bootDelayMs: 300 } } });
    const ac = new AbortController();
    const started = remote.start('old-daemon', { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    const e = await started.catch((x: { code: string; message: string }) => x);
    expect(e).toMatchObject({ code: 'CANCELLED', message: expect.stringMatching(/cancelled here; the daemon does not offer the "cancel" feature/) });
    // It did go on there.
    for (let i = 0; i < 100 && (await served.info('old-daemon')).state !== 'running'; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await served.info('old-daemon')).state).toBe('running');
    await remote.destroy('old-daemon');
    await remote.undefine('old-daemon');
    await remote.close();
  });

  it('a reply too large for one frame fails its call with a clear error; the session goes on', async () => {
    const small = join(tmp, 'small.sock');
    const l = await listenUnix({ path: small, mode: 0o600, identity: 'admin', maxFrameBytes: 32 * 1024, onChannel: (ch) => void serveConnection(ch, served) });
    const remote = await connect(`test+unix:///default?socket=${small}`);
    for (let i = 0; i < 300; i++) await remote.define({ name: `many-${String(i).padStart(3, '0')}-${'x'.repeat(40)}`, memoryMiB: 64, vcpus: 1, os: { type: 'hvm' } });
    const e = (await remote.listDomains({ all: true }).catch((x: unknown) => x)) as { code: string; message: string };
    expect(e.code).toBe('IO_ERROR');
    expect(e.message).toMatch(/the reply to listDomains does not fit in one frame .*FRAME_TOO_LARGE/);
    expect((await remote.info('test')).state).toBe('running');
    await remote.close();
    await l.close();
  });

  it('names what a remote URI lacks, and core alone points to this entry point', async () => {
    await expect(connect('test+tls://127.0.0.1/default')).rejects.toThrow(/needs the ca, cert and key/);
    const { connect: coreConnect } = await import('@virtkit/core');
    await expect(coreConnect('test+tls://127.0.0.1/default')).rejects.toThrow(/use connect\(\) from @virtkit\/rpc/);
  });
});
