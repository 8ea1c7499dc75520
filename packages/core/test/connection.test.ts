// The connection API on test:///default: lifecycle, state checks, events, jobs, node
// documents, persistent nodes. Real plugin-test component in a real worker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, VirtkitError, type Connection, type DomainEvent, type Host } from '../src/index.js';
import { tempDir, testHost } from './helpers.js';

const web = { name: 'web1', memoryMiB: 512, vcpus: 1, os: { type: 'hvm' } };

async function failure(p: Promise<unknown>): Promise<VirtkitError> {
  try {
    await p;
  } catch (e) {
    if (VirtkitError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a failure');
}

describe('test:///default', () => {
  let host: Host;
  let conn: Connection;
  beforeAll(async () => {
    host = await testHost();
  });
  afterAll(async () => {
    await host.close();
  });

  it('starts with one running domain named test, like libvirt', async () => {
    conn = await connect('test:///default', { host });
    expect(await conn.listDomains()).toEqual([expect.objectContaining({ name: 'test', state: 'running', reason: 'booted' })]);
    const node = await conn.nodeInfo();
    expect(node.cpus).toBe(node.sockets * node.coresPerSocket * node.threadsPerCore);
    expect(conn.capabilities().hostWorld).toBe('virtkit:driver/hypervisor-driver@0.3.0');
  });

  it('runs the whole lifecycle with events in order and seq increasing', async () => {
    const seen: DomainEvent[] = [];
    const off = conn.onEvent((e) => seen.push(e));
    const iter = conn.events();
    await conn.define(web);
    expect((await conn.listDomains({ all: true })).map((d) => [d.name, d.state])).toEqual([['test', 'running'], ['web1', 'shut-off']]);
    expect(await conn.start('web1')).toEqual({ state: 'running', reason: 'booted' });
    expect(await conn.suspend('web1')).toEqual({ state: 'paused', reason: 'user' });
    const paused = await conn.info('web1');
    await new Promise((r) => setTimeout(r, 30));
    expect((await conn.info('web1')).cpuTimeNs).toBe(paused.cpuTimeNs); // no CPU time while paused
    expect(await conn.resume('web1')).toEqual({ state: 'running', reason: 'unpaused' });
    await new Promise((r) => setTimeout(r, 20));
    expect((await conn.info('web1')).cpuTimeNs).toBeGreaterThan(paused.cpuTimeNs);
    expect(await conn.reboot('web1')).toEqual({ state: 'running', reason: 'booted' });
    expect(await conn.shutdown('web1')).toEqual({ state: 'shut-off', reason: 'shutdown' });
    await conn.start('web1');
    expect(await conn.destroy('web1')).toEqual({ state: 'shut-off', reason: 'destroyed' });
    const info = await conn.info('web1');
    expect(info).toMatchObject({ state: 'shut-off', memoryKib: 0n, maxMemoryKib: 512n * 1024n, vcpus: 1 });
    await conn.undefine('web1');
    off();
    const kinds = seen.map((e) => `${e.kind}/${e.reason}`);
    expect(kinds).toEqual([
      'defined/unknown', 'started/booted', 'suspended/user', 'resumed/unpaused', 'rebooted/booted',
      'stopped/shutdown', 'started/booted', 'stopped/destroyed', 'undefined/unknown',
    ]);
    expect(seen[0]!.detail).toBe('added');
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.seq).toBe(seen[i - 1]!.seq + 1);
    const fromIter: DomainEvent[] = [];
    for await (const e of iter) {
      fromIter.push(e);
      if (fromIter.length === seen.length) break;
    }
    expect(fromIter).toEqual(seen);
  });

  it('refuses operations that do not fit the state, with OPERATION_INVALID', async () => {
    expect((await failure(conn.start('test'))).message).toBe('cannot start domain test: it is already active (state running)');
    expect((await failure(conn.resume('test'))).code).toBe('OPERATION_INVALID');
    expect((await failure(conn.undefine('test'))).message).toMatch(/destroy or shut it down/);
    expect((await failure(conn.start('ghost'))).code).toBe('NO_DOMAIN');
    expect((await failure(conn.start('../etc'))).code).toBe('INVALID_ARGUMENT');
  });

  it('rejects an invalid config listing every bad field by JSON pointer, and stores nothing', async () => {
    const e = await failure(conn.define({ name: 'bad one', memoryMiB: 0, vcpus: 1, os: { type: 'hvm', kernel: 'vmlinuz' }, colour: 'red' }));
    expect(e.code).toBe('INVALID_CONFIG');
    expect(e.fields!.map((f) => f.pointer).sort()).toEqual(['/colour', '/memoryMiB', '/name', '/os/kernel']);
    expect((await conn.listDomains({ all: true })).map((d) => d.name)).toEqual(['test']);
  });

  it('validates the driver\'s own config section against the schema it publishes', async () => {
    const e = await failure(conn.define({ ...web, driver: { test: { bootDelayMs: -1 } } }));
    expect(e.fields!.map((f) => f.pointer)).toEqual(['/driver/test/bootDelayMs']);
  });

  it('redefining a running domain changes its persistent config, applied at the next start', async () => {
    await conn.define(web);
    await conn.start('web1');
    await conn.define({ ...web, vcpus: 4 });
    expect((await conn.info('web1')).vcpus).toBe(1);
    expect((await conn.getConfig('web1', { live: true })).vcpus).toBe(1);
    expect((await conn.getConfig('web1')).vcpus).toBe(4);
    await conn.destroy('web1');
    await conn.start('web1');
    expect((await conn.info('web1')).vcpus).toBe(4);
    await conn.destroy('web1');
    const uuid = (await conn.getConfig('web1')).uuid;
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect((await failure(conn.define({ ...web, uuid: '00000000-0000-4000-8000-000000000000' }))).message).toMatch(/already exists with uuid/);
    await conn.undefine('web1');
  });

  it('keeps state per connection', async () => {
    const other = await connect('test:///default', { host });
    await other.define({ ...web, name: 'only-there' });
    expect((await conn.listDomains({ all: true })).map((d) => d.name)).not.toContain('only-there');
    await other.close();
  });

  it('serializes jobs on one domain, runs different domains concurrently, reports progress, cancels', async () => {
    const slow = (name: string) => ({ ...web, name, driver: { test: { bootDelayMs: 300 } } });
    await conn.define(slow('a'));
    await conn.define(slow('b'));
    const progress: number[] = [];
    const t0 = Date.now();
    const started = Promise.all([conn.start('a', { onProgress: (p) => progress.push(p) }), conn.start('b')]);
    await new Promise((r) => setTimeout(r, 100));
    expect(conn.listJobs().map((j) => `${j.operation} ${j.domain} ${j.state}`).sort()).toEqual(['start a running', 'start b running']);
    // queued behind the start of a: must see it running, not fail as "not running"
    const suspended = conn.suspend('a');
    await started;
    const both = Date.now() - t0;
    expect(both).toBeLessThan(550); // concurrent: about one boot delay, not two
    expect(await suspended).toEqual({ state: 'paused', reason: 'user' });
    expect(progress).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);

    await conn.destroy('a');
    const ac = new AbortController();
    const cancelled = conn.start('a', { signal: ac.signal });
    setTimeout(() => ac.abort(), 80);
    expect((await failure(cancelled)).code).toBe('CANCELLED');
    expect((await conn.listDomains({ all: true })).find((d) => d.name === 'a')?.state).toBe('shut-off');
    await conn.destroy('b');
  });

  it('opens a node described by a JSON file: test:///ABSOLUTE/PATH', async () => {
    const dir = tempDir();
    const file = join(dir, 'node.json');
    writeFileSync(file, JSON.stringify({
      node: { cpus: 4, cpuModel: 'fake-from-file' },
      domains: [
        { config: { name: 'alpha', memoryMiB: 256, vcpus: 2, os: { type: 'hvm' } }, state: 'running' },
        { config: { name: 'beta', memoryMiB: 128, vcpus: 1, os: { type: 'container', rootfs: '/srv/beta' } }, state: 'paused' },
        { config: { name: 'gamma', memoryMiB: 128, vcpus: 1, os: { type: 'hvm' } } },
      ],
    }));
    const c = await connect(`test://${file}`, { host });
    expect((await c.listDomains({ all: true })).map((d) => `${d.name}:${d.state}`)).toEqual(['alpha:running', 'beta:paused', 'gamma:shut-off']);
    expect((await c.nodeInfo()).cpuModel).toBe('fake-from-file');
    expect((await c.nodeInfo()).numa).toEqual([{ id: 0, cpus: new Uint32Array([0, 1, 2, 3]), memoryKib: 16n * 1024n * 1024n }]);
    expect((await c.getConfig('alpha')).uuid).toMatch(/^[0-9a-f-]{36}$/);
    await c.resume('beta');
    await c.close();

    writeFileSync(file, JSON.stringify({ domains: [{ config: { name: 'x', memoryMiB: 0, vcpus: 1, os: { type: 'hvm' } } }] }));
    const e = await failure(connect(`test://${file}`, { host }));
    expect(e.code).toBe('INVALID_CONFIG');
    expect(e.message).toMatch(/^node document \/domains\/0\/config: /);
    expect((await failure(connect(`test://${dir}/missing.json`, { host }))).code).toBe('NOT_FOUND');
  });

  it('keeps definitions and event numbering across reopening a persistent node', async () => {
    const stateDir = tempDir();
    const c1 = await connect('test:///default', { host, stateDir });
    await c1.define(web);
    await c1.start('web1');
    const last = (await c1.events({ since: 0 }).next()).value as DomainEvent;
    expect(last.seq).toBe(1);
    await c1.close();
    const c2 = await connect('test:///default', { host, stateDir });
    expect((await c2.listDomains({ all: true })).find((d) => d.name === 'web1')?.state).toBe('running');
    const seen: DomainEvent[] = [];
    c2.onEvent((e) => seen.push(e));
    await c2.destroy('web1');
    expect(seen[0]!.seq).toBe(3); // defined=1, started=2 before the reopen
    const replay: DomainEvent[] = [];
    const it = c2.events({ since: 1 });
    for (let i = 0; i < 2; i++) replay.push((await it.next()).value as DomainEvent);
    expect(replay.map((e) => `${e.seq}:${e.kind}`)).toEqual(['2:started', '3:stopped']);
    await it.return!();
    await c2.close();
  });

  it('closes', async () => {
    await conn.close();
    expect((await failure(conn.listDomains())).code).toBe('OPERATION_INVALID');
  });
});

describe('event replay without following', () => {
  it('ends after what the node kept when follow is false', async () => {
    const host = await testHost();
    const c = await connect('test:///default', { host });
    await c.suspend('test');
    await c.resume('test');
    const got: string[] = [];
    for await (const e of c.events({ since: 0, follow: false })) got.push(`${e.seq}:${e.kind}`);
    expect(got).toEqual(['1:suspended', '2:resumed']);
    const none: unknown[] = [];
    for await (const e of c.events({ follow: false })) none.push(e);
    expect(none).toEqual([]);
    await c.close();
    await host.close();
  });

  it('drops a consumer that falls too far behind, naming the seq to resume from; nothing is lost', async () => {
    const host = await testHost();
    const c = await connect('test:///default', { host });
    const slow = c.events({ maxQueued: 3 });
    await c.suspend('test'); // seq 1
    expect((await slow.next()).value).toMatchObject({ seq: 1, kind: 'suspended' });
    for (let i = 0; i < 2; i++) {
      await c.resume('test');
      await c.suspend('test');
    } // seqs 2..5: one more than it may hold
    const e = await failure(slow.next());
    expect(e.code).toBe('IO_ERROR');
    expect(e.message).toBe('the event consumer fell 3 events behind and was dropped: resume with since 1');
    const resumed: number[] = [];
    for await (const x of c.events({ since: 1, follow: false })) resumed.push(x.seq);
    expect(resumed).toEqual([2, 3, 4, 5]);
    await c.close();
    await host.close();
  });
});

describe('autostart', () => {
  it('is a persistent per-domain flag that survives runtime changes and reopening', async () => {
    const host = await testHost();
    const stateDir = tempDir();
    const c1 = await connect('test:///default', { host, stateDir });
    await c1.define(web);
    await c1.setAutostart('web1', true);
    await c1.start('web1');
    await c1.destroy('web1');
    await c1.define({ ...web, vcpus: 2 });
    expect((await c1.listDomains({ all: true })).find((d) => d.name === 'web1')?.autostart).toBe(true);
    await c1.close();
    const c2 = await connect('test:///default', { host, stateDir });
    expect((await c2.listDomains({ all: true })).find((d) => d.name === 'web1')?.autostart).toBe(true);
    await c2.setAutostart('web1', false);
    expect((await c2.listDomains({ all: true })).find((d) => d.name === 'web1')?.autostart).toBe(false);
    expect((await c2.setAutostart('ghost', true).catch((e) => e)).code).toBe('NO_DOMAIN');
    await c2.close();
    await host.close();
  });
});

describe('cancellation and closing', () => {
  it('an already-aborted signal cancels the job before the driver runs', async () => {
    const host = await testHost();
    const c = await connect('test:///default', { host });
    await c.define(web);
    expect((await failure(c.start('web1', { signal: AbortSignal.abort() }))).code).toBe('CANCELLED');
    expect((await c.listDomains({ all: true })).find((d) => d.name === 'web1')?.state).toBe('shut-off');
    await c.close();
    await host.close();
  });

  it('closing the host fails the operations in flight instead of leaving them hanging', async () => {
    const host = await testHost();
    const c = await connect('test:///default', { host });
    await c.define({ ...web, driver: { test: { bootDelayMs: 5000 } } });
    const slow = failure(c.start('web1'));
    await new Promise((r) => setTimeout(r, 100));
    await host.close();
    const e = await slow;
    expect(e.code).toBe('DRIVER_FAILED');
    expect(e.message).toMatch(/was closed/);
  });
});

describe('uuids', () => {
  it('are unique per node, also on a persistent node and after undefine', async () => {
    const host = await testHost();
    const c = await connect('test:///default', { host, stateDir: tempDir() });
    const uuid = '11111111-2222-4333-8444-555555555555';
    await c.define({ ...web, uuid });
    expect((await failure(c.define({ ...web, name: 'web2', uuid }))).message).toBe(`uuid ${uuid} is already used by domain web1`);
    await c.undefine('web1');
    await c.define({ ...web, name: 'web2', uuid });
    expect((await c.getConfig('web2')).uuid).toBe(uuid);
    await c.close();
    await host.close();
  });
});

describe('two connections to one persistent node', () => {
  it('share its job queue: operations on one domain never overlap', async () => {
    const host = await testHost();
    const stateDir = tempDir();
    const a = await connect('test:///default', { host, stateDir });
    const b = await connect('test:///default', { host, stateDir });
    await a.define({ ...web, driver: { test: { bootDelayMs: 200 } } });
    const start = a.start('web1');
    await new Promise((r) => setTimeout(r, 50));
    // b sees a's start in flight, and its destroy waits for it instead of racing it
    expect(b.listJobs().map((j) => `${j.operation} ${j.domain}`)).toEqual(['start web1']);
    expect(await b.destroy('web1')).toEqual({ state: 'shut-off', reason: 'destroyed' });
    expect(await start).toEqual({ state: 'running', reason: 'booted' });
    await a.close();
    await b.close();
    await host.close();
  });
});
