// The Wasm driver host as a sandbox: grants, denials, stuck and trapping drivers,
// refused plugins. Uses the fixture plugins in fixtures/plugins (built by `pnpm build`).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, discoverPlugins, TOKENS, type Connection, type Host, type OperationRequest, type PluginPackage } from '../src/index.js';
import { codeOf, fixture, tempDir, testHost } from './helpers.js';

const EVIL_POLICY = { plugins: { 'virtkit-fixture-evil': { grants: 'requested' as const } } };

function request(kind: OperationRequest['kind'], args: Record<string, unknown> = {}): OperationRequest {
  return {
    kind,
    node: { uri: 'evil:///default', stateDir: '/nonexistent', runtimeDir: '/nonexistent' },
    domain: 'victim',
    config: JSON.stringify({ name: 'victim', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' } }),
    status: { state: 'running', reason: 'booted' },
    args: JSON.stringify(args),
  };
}

describe('sandboxed driver host', () => {
  let host: Host;
  let conn: Connection;

  beforeAll(async () => {
    host = await testHost({ pluginPaths: [fixture('evil')], policy: EVIL_POLICY, stepTimeoutMs: 400, limits: { maxEffectMs: 300, maxMemoryBytes: 64 << 20 } });
    conn = await connect('evil:///default', { host });
  });
  afterAll(async () => {
    await conn?.close();
    await host?.close();
  });

  it('hands a driver a typed GRANT_DENIED for each effect outside its grant, and performs granted ones', async () => {
    const evil = await host.plugins.forScheme('evil');
    const out = await evil.host.run(request('start'));
    const payload = JSON.parse(out.payload!);
    expect(payload.attempts).toEqual({
      spawn: 'grant-denied',
      read: 'grant-denied',
      escape: 'grant-denied',
      write: 'grant-denied',
      socket: 'grant-denied',
      signal: 'grant-denied',
      preload: 'grant-denied',
      args: 'grant-denied',
      argspace: 'grant-denied',
      pinnedok: 'allowed',
    });
    expect(payload.trueExit).toBe(0);
    expect(existsSync('/tmp/virtkit-evil-was-here')).toBe(false);
    // and the host keeps serving
    expect((await conn.info('victim')).state).toBe('running');
  });

  it('stops a driver stuck in a CPU loop, fails its operation with TIMEOUT, and serves the next call', async () => {
    const evil = await host.plugins.forScheme('evil');
    const restarts = evil.host.restarts;
    const t0 = Date.now();
    expect(await codeOf(conn.destroy('victim'))).toMatch(/^TIMEOUT: .*stuck in one step for over 400 ms/);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(evil.host.restarts).toBe(restarts + 1);
    const info = await conn.info('victim');
    expect(info.vcpus).toBe(1);
    // The failed destroy changed nothing: the state is still what the records say.
    expect((await conn.listDomains())[0]).toMatchObject({ name: 'victim', state: 'running' });
  });

  it('bounds a driver\'s Wasm memory: one that grows past limits.maxMemoryBytes is stopped and replaced', async () => {
    const evil = await host.plugins.forScheme('evil');
    const restarts = evil.host.restarts;
    expect(await codeOf(evil.host.run(request('resume')))).toMatch(/^DRIVER_FAILED: .*trapped during resume: it holds \d+ MiB of Wasm memory, over its limit of 64 MiB \(limits.maxMemoryBytes\)/);
    // The next call runs on a fresh instance.
    expect((await conn.info('victim')).state).toBe('running');
    expect(evil.host.restarts).toBe(restarts);
  });

  it('survives a driver that traps at the component boundary', async () => {
    expect(await codeOf(conn.reset('victim'))).toMatch(/^DRIVER_FAILED: .*trapped during reset/);
    expect((await conn.info('victim')).state).toBe('running');
  });

  it('bounds every effect in time: the driver sees TIMEOUT for a sleep longer than the limit', async () => {
    const evil = await host.plugins.forScheme('evil');
    const out = await evil.host.run(request('suspend', { ms: 5000 }));
    expect(JSON.parse(out.payload!)).toEqual({ caught: 'timeout' });
  });

  it('cancels an operation: the effect in flight fails with CANCELLED inside the driver', async () => {
    const evil = await host.plugins.forScheme('evil');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const out = await evil.host.run(request('suspend', { ms: 250 }), { signal: ac.signal });
    expect(JSON.parse(out.payload!)).toEqual({ caught: 'cancelled' });
  });

  it('wires each plugin in its own tsyringe child container', async () => {
    const evil = await host.plugins.forScheme('evil');
    const test = await host.plugins.forScheme('test');
    expect(evil.container).not.toBe(test.container);
    expect(evil.container.resolve<PluginPackage>(TOKENS.Plugin).name).toBe('virtkit-fixture-evil');
    expect(test.container.resolve<PluginPackage>(TOKENS.Plugin).name).toBe('@virtkit/plugin-test');
    // a plugin's registrations do not leak into the host's scope
    expect(host.container.isRegistered(TOKENS.Plugin)).toBe(false);
    expect(evil.container.resolve(TOKENS.PluginHost)).toBe(evil.host);
  });

  it('answers NO_SUPPORT for an operation the driver does not declare, without calling it', async () => {
    expect(conn.supports('shutdown')).toBe(false);
    expect(await codeOf(conn.shutdown('victim'))).toBe('NO_SUPPORT: the evil driver does not support shutdown');
  });
});

describe('plugin loading', () => {
  it('refuses a third-party plugin whose grants the default policy does not give, naming them', async () => {
    const host = await testHost({ pluginPaths: [fixture('evil')] });
    try {
      const msg = await codeOf(host.plugins.forScheme('evil'));
      expect(msg).toMatch(/^PLUGIN_REFUSED: plugin virtkit-fixture-evil@0.0.1 requires grants the policy does not give: executables \/(usr\/)?bin\/true; executables \/usr\/bin\/echo \(args hello \[a-z\]\+\); read .*virtkit-fixture-evil/);
    } finally {
      await host.close();
    }
  });

  it('refuses a plugin built against a newer minor of the world', async () => {
    const host = await testHost({ pluginPaths: [fixture('future-minor')] });
    expect(await codeOf(host.plugins.forScheme('future-minor'))).toBe(
      'PLUGIN_REFUSED: plugin virtkit-fixture-future-minor@0.0.1: built against virtkit:driver/hypervisor-driver@0.4.0, incompatible with this host\'s @0.3.0 (needs the same major and a minor no newer than 0.3)',
    );
    await host.close();
  });

  it('loads and runs a component built against the older 0.1.0 WIT (an additive minor keeps old drivers working)', async () => {
    const logs: string[] = [];
    const host = await testHost({ pluginPaths: [fixture('world-0.1.0')], onLog: (_p, level, m) => logs.push(`${level}: ${m}`) });
    try {
      const conn = await connect('world-old:///default', { host });
      // It really is a 0.1.0 component, on a 0.3.0 host.
      expect(conn.capabilities().plugin.world).toBe('virtkit:driver/hypervisor-driver@0.1.0');
      expect(conn.capabilities().hostWorld).toBe('virtkit:driver/hypervisor-driver@0.3.0');
      const loaded = await host.plugins.forScheme('world-old');
      expect(readFileSync(loaded.pkg.componentPath).includes(Buffer.from('virtkit:driver/host@0.1.0'))).toBe(true);
      expect(await conn.listDomains({ all: true })).toMatchObject([{ name: 'old', state: 'shut-off' }]);
      // An operation with an effect round trip and a host import (log) works across versions.
      expect(await conn.start('old')).toEqual({ state: 'running', reason: 'booted' });
      expect(logs).toContain('info: starting old');
      expect(await conn.destroy('old')).toEqual({ state: 'shut-off', reason: 'destroyed' });
      // Its outcomes have no info-reuse (0.3.0): every info runs the driver.
      const cpu = [];
      for (let i = 0; i < 3; i++) cpu.push((await conn.info('old')).cpuTimeNs);
      expect(cpu[1]! - cpu[0]!).toBe(1n);
      expect(cpu[2]! - cpu[1]!).toBe(1n);
      // What 0.2.0 added is simply not supported by it.
      expect(conn.supports('exec')).toBe(false);
      await conn.start('old');
      expect(await codeOf(conn.exec('old', ['true']))).toBe('NO_SUPPORT: the world-old driver does not support exec');
      await conn.close();
    } finally {
      await host.close();
    }
  });

  it('loads a component built against 0.2.0, whose outcomes lack info-reuse, and asks it for every info', async () => {
    const host = await testHost({ pluginPaths: [fixture('world-0.2.0')] });
    try {
      const conn = await connect('world-020:///default', { host });
      expect(conn.capabilities().plugin.world).toBe('virtkit:driver/hypervisor-driver@0.2.0');
      const loaded = await host.plugins.forScheme('world-020');
      expect(readFileSync(loaded.pkg.componentPath).includes(Buffer.from('virtkit:driver/host@0.2.0'))).toBe(true);
      const cpu = [];
      for (let i = 0; i < 3; i++) cpu.push((await conn.info('mid')).cpuTimeNs);
      expect(cpu).toEqual([cpu[0], cpu[0]! + 1n, cpu[0]! + 2n]);
      await conn.close();
    } finally {
      await host.close();
    }
  });

  it('refuses a plugin built against another major of the world', async () => {
    const host = await testHost({ pluginPaths: [fixture('other-major')] });
    expect(await codeOf(host.plugins.forScheme('other-major'))).toMatch(/^PLUGIN_REFUSED: plugin virtkit-fixture-other-major@0.0.1: built against .*@1\.0\.0, incompatible/);
    await host.close();
  });

  it('refuses a component that imports WASI', async () => {
    const host = await testHost({ pluginPaths: [fixture('wasi-importer')] });
    const msg = await codeOf(host.plugins.forScheme('wasi-importer'));
    expect(msg).toMatch(/^PLUGIN_REFUSED: plugin virtkit-fixture-wasi-importer@0.0.1: its component imports wasi:cli\/environment, .*; a driver may import only virtkit:driver\/host$/);
    await host.close();
  });

  it('refuses a plugin the policy disallows', async () => {
    const host = await testHost({ policy: { plugins: { '@virtkit/plugin-test': { allow: false } } } });
    expect(await codeOf(connect('test:///default', { host }))).toBe('PLUGIN_REFUSED: plugin @virtkit/plugin-test@0.1.0 is not allowed by the grant policy');
    await host.close();
  });

  it('fails an unknown scheme listing what is installed', async () => {
    const host = await testHost();
    expect(await codeOf(connect('nope:///system', { host }))).toMatch(/^NO_DRIVER: no installed plugin handles nope:\/\/ URIs; installed: qemu:\/\/ \(@virtkit\/plugin-kvm@0\.1\.0\); lxc:\/\/ \(@virtkit\/plugin-lxc@0\.1\.0\); test:\/\/ \(@virtkit\/plugin-test@0\.1\.0\)/);
    await host.close();
  });
});

describe('plugin discovery', () => {
  const manifest = (name: string, scheme: string) => JSON.stringify({
    name, version: '1.0.0',
    virtkit: { kind: 'hypervisor-driver', world: 'virtkit:driver/hypervisor-driver@0.1.0', component: 'driver.wasm', schemes: [scheme], grants: {} },
  });

  it('ignores a package that claims a name other than where it is installed', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'node_modules', 'innocent'), { recursive: true });
    writeFileSync(join(dir, 'node_modules', 'innocent', 'package.json'), manifest('@virtkit/impostor', 'qemu'));
    mkdirSync(join(dir, 'node_modules', '@acme', 'driver'), { recursive: true });
    writeFileSync(join(dir, 'node_modules', '@acme', 'driver', 'package.json'), manifest('@acme/driver', 'acme'));
    expect((await discoverPlugins([dir])).map((p) => p.name)).toEqual(['@acme/driver']);
  });

  it('refuses two plugins claiming one scheme, unless pluginPaths picks one', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'node_modules', 'copycat'), { recursive: true });
    writeFileSync(join(dir, 'node_modules', 'copycat', 'package.json'), manifest('copycat', 'evil'));
    const both = await testHost({ pluginSearch: [dir], pluginPaths: [fixture('evil'), join(dir, 'node_modules', 'copycat')], policy: EVIL_POLICY });
    expect(await codeOf(both.plugins.forScheme('evil'))).toMatch(/^PLUGIN_REFUSED: .* all claim evil:\/\/ URIs/);
    await both.close();
    const picked = await testHost({ pluginSearch: [dir], pluginPaths: [fixture('evil')], policy: EVIL_POLICY });
    expect((await picked.plugins.forScheme('evil')).pkg.name).toBe('virtkit-fixture-evil');
    await picked.close();
  });
});
