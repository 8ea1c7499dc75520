import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, loadHostConfig, VirtkitError } from '../src/index.js';
import { fixture, repoRoot, tempDir, testHost } from './helpers.js';

describe('host config file', () => {
  it('reads paths relative to itself and loads the plugins and policy it names', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc', 'policy.json'), JSON.stringify({ plugins: { 'virtkit-fixture-evil': { grants: 'requested' } } }));
    writeFileSync(join(dir, 'etc', 'virtkit.json'), JSON.stringify({ stateRoot: '../state', pluginPaths: [fixture('evil')], policy: 'policy.json', stepTimeoutMs: 1000 }));
    const opts = await loadHostConfig(join(dir, 'etc', 'virtkit.json'));
    expect(opts).toEqual({ stateRoot: join(dir, 'state'), pluginPaths: [fixture('evil')], policy: join(dir, 'etc', 'policy.json'), stepTimeoutMs: 1000 });
    const host = await testHost({ ...opts, cacheDir: join(repoRoot, '.cache', 'glue') });
    const conn = await connect('evil:///default', { host });
    expect((await conn.listDomains()).map((d) => d.name)).toEqual(['victim']);
    await conn.close();
    await host.close();
  });

  it('names the bad field', async () => {
    const file = join(tempDir(), 'virtkit.json');
    writeFileSync(file, JSON.stringify({ pluginPaths: ['ok', 3] }));
    const e = await loadHostConfig(file).catch((x) => x);
    expect(VirtkitError.is(e, 'INVALID_CONFIG')).toBe(true);
    expect(e.message).toBe(`host config ${file}: /pluginPaths/1: must be a path`);
    writeFileSync(file, JSON.stringify({ stateroot: '/x' }));
    expect((await loadHostConfig(file).catch((x) => x)).fields).toEqual([{ pointer: '/stateroot', message: expect.stringMatching(/^unknown property/) }]);
  });

  it('treats a missing default file as all defaults, a missing named file as an error', async () => {
    const saved = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = tempDir();
    try {
      if (process.getuid?.() !== 0) expect(await loadHostConfig()).toEqual({});
    } finally {
      process.env.XDG_CONFIG_HOME = saved;
    }
    expect((await loadHostConfig('/nonexistent/virtkit.json').catch((x) => x)).code).toBe('NOT_FOUND');
  });
});
