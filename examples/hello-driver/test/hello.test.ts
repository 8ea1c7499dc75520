// The example driver, loaded the way an application loads any third-party plugin: by its
// package directory, with an operator policy that gives it what its manifest requests.
// Needs `pnpm build` first (the component and core's worker are build outputs).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, FileStore, Host, VirtkitError, type Connection, type DomainEvent, type HostOptions } from '@virtkit/core';

const exampleDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const repoRoot = join(exampleDir, '..', '..');
const POLICY = { plugins: { 'virtkit-example-hello-driver': { grants: 'requested' as const } } };

const temps: string[] = [];
function hostOptions(extra: HostOptions = {}): HostOptions {
  const dir = mkdtempSync(join(tmpdir(), 'virtkit-hello-'));
  temps.push(dir);
  return {
    pluginPaths: [exampleDir],
    stateRoot: join(dir, 'state'),
    runtimeRoot: join(dir, 'run'),
    cacheDir: join(repoRoot, '.cache', 'glue'),
    // Only the example: no installed plugins are looked for.
    pluginSearch: [],
    ...extra,
  };
}

afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe('hello:///default', () => {
  let host: Host;
  let conn: Connection;

  beforeAll(async () => {
    host = await new Host(hostOptions({ policy: POLICY })).init();
    conn = await connect('hello:///default', { host });
  });
  afterAll(async () => {
    await conn?.close();
    await host?.close();
  });

  it('describes itself and opens a node with no domains', async () => {
    expect(conn.capabilities().plugin).toEqual({ name: 'virtkit-example-hello-driver', version: '0.1.0', world: 'virtkit:driver/hypervisor-driver@0.3.0' });
    expect(conn.driver.operations.sort()).toEqual(['destroy', 'info', 'open', 'start']);
    expect(conn.supports('per-connection-state')).toBe(true);
    expect(await conn.listDomains({ all: true })).toEqual([]);
  });

  it('defines, starts (running echo under its grant), reports info, destroys', async () => {
    const seen: DomainEvent[] = [];
    const off = conn.onEvent((e) => seen.push(e));
    await conn.define({ name: 'greeter', memoryMiB: 256, vcpus: 1, os: { type: 'hvm' } });
    expect(await conn.info('greeter')).toMatchObject({ state: 'shut-off', memoryKib: 0n, maxMemoryKib: 256n * 1024n });

    expect(await conn.start('greeter')).toEqual({ state: 'running', reason: 'booted' });
    expect(await conn.info('greeter')).toEqual({
      state: 'running', reason: 'booted', maxMemoryKib: 256n * 1024n, memoryKib: 256n * 1024n, vcpus: 1, cpuTimeNs: 0n,
    });
    expect(await conn.listDomains()).toEqual([expect.objectContaining({ name: 'greeter', state: 'running' })]);

    expect(await conn.destroy('greeter')).toEqual({ state: 'shut-off', reason: 'destroyed' });
    expect((await conn.info('greeter')).state).toBe('shut-off');
    off();
    expect(seen.map((e) => `${e.domain} ${e.kind}/${e.reason}`)).toEqual([
      'greeter defined/unknown', 'greeter started/booted', 'greeter stopped/destroyed',
    ]);
  });

  it('keeps what echo printed in the runtime record the host stores for the domain', async () => {
    // A node kept in a file store (instead of per connection, in memory) lets us read back
    // the runtime record the driver returned from start.
    const stateDir = join(temps[0]!, 'node');
    const c = await connect('hello:///default', { host, stateDir });
    await c.define({ name: 'web1', memoryMiB: 128, vcpus: 2, os: { type: 'hvm' } });
    await c.start('web1');
    await c.close();
    const store = await FileStore.open(stateDir);
    try {
      const d = await store.getDomain('web1');
      expect(d?.status).toEqual({ state: 'running', reason: 'booted' });
      expect(JSON.parse(d!.runtime!)).toMatchObject({ greeting: 'started web1', startedAtMs: expect.any(Number) });
    } finally {
      await store.close();
    }
  });

  it('answers NO_SUPPORT for what it does not implement', async () => {
    await conn.start('greeter');
    await expect(conn.suspend('greeter')).rejects.toMatchObject({ code: 'NO_SUPPORT' });
    await expect(conn.nodeInfo()).rejects.toMatchObject({ code: 'NO_SUPPORT' });
    await conn.destroy('greeter');
  });
});

describe('without a policy entry', () => {
  it('is refused with PLUGIN_REFUSED naming the executable it asks for', async () => {
    // Third-party plugins get no grants by default, so one that asks for any is refused.
    const host = await new Host(hostOptions()).init();
    try {
      const err = await host.plugins.forScheme('hello').then(() => undefined, (e: unknown) => e);
      expect(VirtkitError.is(err)).toBe(true);
      expect((err as VirtkitError).code).toBe('PLUGIN_REFUSED');
      expect((err as VirtkitError).message).toBe(
        'plugin virtkit-example-hello-driver@0.1.0 requires grants the policy does not give: executables /usr/bin/echo',
      );
      await expect(connect('hello:///default', { host })).rejects.toMatchObject({ code: 'PLUGIN_REFUSED' });
    } finally {
      await host.close();
    }
  });
});
