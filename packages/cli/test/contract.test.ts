// The driver contract, one lifecycle scenario written once and run against every driver in
// DRIVERS: define, start, info, suspend/resume (when supported), exec (when supported), a
// graceful shutdown (or destroy), undefine, list, and the lifecycle events in order. Real
// drivers in real workers; qemu and lxc run real guests (TCG here) and are skipped when their
// guest image was never built (scripts/test.sh builds them), never in CI.
//
// It lives in the CLI package because that package already depends on core and on the driver
// plugins (it is where a host discovers them): no extra workspace package or lockfile change.
// Adding a driver is one DRIVERS entry.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, Host, type Connection, type DomainEvent, type HostOptions } from '@virtkit/core';
// The real-guest helpers the daemon tests share: one tiny-guest config, one wait loop.
import { guest, hasGuest, repo, tinyVm, until } from '../../daemon/test/guest.js';

interface DriverUnderTest {
  uri: string;
  /** Why it cannot run here (skipped), or undefined. */
  missing(): string | undefined;
  /** Host options besides the state roots (which plugins to find). */
  host: Partial<HostOptions>;
  /** A domain config for `name`; `root` is this driver's private temp dir. */
  domain(name: string, root: string): Record<string, unknown>;
  /** Resolves once the started guest can take a graceful shutdown. */
  ready?(conn: Connection, name: string, root: string): Promise<void>;
  /** How long each step may take (real guests boot slowly under TCG). */
  timeoutMs: number;
}

const cliPlugins = { pluginSearch: [join(repo, 'packages', 'cli')] };
const fileIncludes = (path: string, text: string) => () => {
  try {
    return readFileSync(path, 'utf8').includes(text);
  } catch {
    return false;
  }
};

const rootfs = join(repo, '.cache', 'test-rootfs');

const DRIVERS: DriverUnderTest[] = [
  {
    uri: 'test:///default',
    missing: () => undefined,
    host: cliPlugins,
    domain: (name) => ({ name, memoryMiB: 256, vcpus: 2, os: { type: 'hvm' } }),
    timeoutMs: 10_000,
  },
  {
    // The tiny real guest of scripts/build-test-guest.sh, as packages/plugin-kvm/test does.
    uri: 'qemu:///system',
    missing: () => (hasGuest ? undefined : `no test guest in ${guest} (scripts/build-test-guest.sh)`),
    host: cliPlugins,
    domain: (name, root) => tinyVm(root, name, { serialLog: join(root, `${name}.serial.log`), driver: { qemu: { powerdownRetryMs: 300 } } }),
    ready: (_c, name, root) => until('the guest to be ready', fileIncludes(join(root, `${name}.serial.log`), 'VIRTKIT-GUEST-READY'), 60_000),
    timeoutMs: 120_000,
  },
  {
    // plugin-lxc, found by path (the CLI does not depend on it yet), with the busybox root
    // file system of scripts/build-test-rootfs.sh.
    uri: 'lxc:///system',
    missing: () =>
      !existsSync(join(repo, 'packages', 'plugin-lxc', 'dist', 'plugin-lxc.wasm'))
        ? 'plugin-lxc is not built (packages/plugin-lxc/dist/plugin-lxc.wasm)'
        : !existsSync(join(rootfs, 'manifest.json'))
          ? 'no test rootfs in .cache/test-rootfs (scripts/build-test-rootfs.sh)'
          : !existsSync('/usr/bin/lxc-start')
            ? 'LXC is not installed'
            : undefined,
    host: { pluginSearch: [], pluginPaths: [join(repo, 'packages', 'plugin-lxc')] },
    domain: (name) => ({ name, memoryMiB: 64, vcpus: 1, os: { type: 'container', rootfs: join(rootfs, 'rootfs'), hostname: `h-${name}` } }),
    ready: async (c, name, root) => {
      const log = join(root, 'run', 'virtkit-plugin-lxc', 'system', (await c.getConfig(name)).uuid!, 'console.log');
      await until('init to greet', fileIncludes(log, 'VIRTKIT-CT-READY'), 30_000);
    },
    timeoutMs: 60_000,
  },
];

for (const d of DRIVERS) {
  const missing = d.missing();
  describe.skipIf(missing !== undefined && !process.env.CI)(`driver contract: ${d.uri}${missing ? ` (skipped: ${missing})` : ''}`, () => {
    // Short roots: a unix socket path must stay under 108 bytes.
    const root = mkdtempSync('/tmp/vk-');
    const name = 'contract1';
    let host: Host;
    let conn: Connection;
    const events: DomainEvent[] = [];
    const mine = () => events.filter((e) => e.domain === name).map((e) => `${e.kind}/${e.reason}`);

    beforeAll(async () => {
      host = await new Host({ stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue'), ...d.host }).init();
      conn = await connect(d.uri, { host });
      conn.onEvent((e) => events.push(e));
    }, d.timeoutMs);
    afterAll(async () => {
      await conn?.destroy(name).catch(() => {});
      await conn?.undefine(name).catch(() => {});
      await conn?.close();
      await host?.close();
    }, d.timeoutMs);

    it('defines a domain: listed with --all as shut off, not among the active ones', async () => {
      const config = d.domain(name, root);
      expect(await conn.define(config)).toMatchObject({ name, state: 'shut-off', persistent: true });
      expect((await conn.listDomains({ all: true })).find((x) => x.name === name)).toMatchObject({ state: 'shut-off' });
      expect((await conn.listDomains()).map((x) => x.name)).not.toContain(name);
      expect(await conn.getConfig(name)).toMatchObject({ name, memoryMiB: config.memoryMiB, vcpus: config.vcpus });
    }, d.timeoutMs);

    it('starts it: running (booted), active, info matches its config', async () => {
      expect(await conn.start(name)).toEqual({ state: 'running', reason: 'booted' });
      expect((await conn.listDomains()).find((x) => x.name === name)).toMatchObject({ state: 'running', reason: 'booted' });
      const config = await conn.getConfig(name);
      const info = await conn.info(name);
      expect(info).toMatchObject({ state: 'running', vcpus: config.vcpus, maxMemoryKib: BigInt(config.memoryMiB) * 1024n });
      expect(await conn.start(name).catch((e: { code: string }) => e.code)).toBe('OPERATION_INVALID');
    }, d.timeoutMs);

    it('suspends and resumes it when the driver supports suspend', async () => {
      if (!conn.supports('suspend')) {
        expect(await conn.suspend(name).catch((e: { code: string }) => e.code)).toBe('NO_SUPPORT');
        return;
      }
      expect(await conn.suspend(name)).toEqual({ state: 'paused', reason: 'user' });
      expect((await conn.info(name)).state).toBe('paused');
      expect(await conn.resume(name)).toEqual({ state: 'running', reason: 'unpaused' });
      expect((await conn.info(name)).state).toBe('running');
    }, d.timeoutMs);

    it('runs a command inside it when the driver supports exec', async () => {
      await d.ready?.(conn, name, root);
      if (!conn.supports('exec')) {
        expect(await conn.exec(name, ['true']).catch((e: { code: string }) => e.code)).toBe('NO_SUPPORT');
        return;
      }
      const r = await conn.exec(name, ['echo', 'contract', 'ok']);
      expect([r.exitCode, r.signal, Buffer.from(r.stdout).toString()]).toEqual([0, null, 'contract ok\n']);
      expect((await conn.exec(name, ['false'])).exitCode).toBe(1);
    }, d.timeoutMs);

    it('stops it: gracefully when the driver supports shutdown, else destroy', async () => {
      await d.ready?.(conn, name, root);
      const graceful = conn.supports('shutdown');
      const status = graceful ? await conn.shutdown(name, { timeoutMs: d.timeoutMs / 2 }) : await conn.destroy(name);
      expect(status).toEqual({ state: 'shut-off', reason: graceful ? 'shutdown' : 'destroyed' });
      expect((await conn.info(name)).state).toBe('shut-off');
      expect((await conn.listDomains()).map((x) => x.name)).not.toContain(name);
    }, d.timeoutMs);

    it('undefines it: gone from the list; the events came in order', async () => {
      await conn.undefine(name);
      expect((await conn.listDomains({ all: true })).map((x) => x.name)).not.toContain(name);
      expect(await conn.info(name).catch((e: { code: string }) => e.code)).toBe('NO_DOMAIN');
      const graceful = conn.supports('shutdown');
      const expected = [
        'defined/unknown',
        'started/booted',
        ...(conn.supports('suspend') ? ['suspended/user', 'resumed/unpaused'] : []),
        graceful ? 'stopped/shutdown' : 'stopped/destroyed',
        'undefined/unknown',
      ];
      await until('every event', () => mine().length >= expected.length, 5000).catch(() => {});
      expect(mine()).toEqual(expected);
      const seqs = events.map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }, d.timeoutMs);
  });
}
