// Shared set-up for core tests: a host in temp dirs that finds this repository's plugins
// and the fixture plugins, with a glue cache kept across runs under .cache/.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Host, VirtkitError, type HostOptions } from '../src/index.js';

export const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..', '..');
export const fixture = (name: string) => join(here, 'fixtures', 'plugins', name);

export function tempDir(prefix = 'virtkit-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function testHost(opts: HostOptions = {}): Promise<Host> {
  const dir = tempDir();
  return new Host({
    stateRoot: join(dir, 'state'),
    runtimeRoot: join(dir, 'run'),
    cacheDir: join(repoRoot, '.cache', 'glue'),
    // plugin-test is a dependency of the CLI package: found in its node_modules.
    pluginSearch: [join(repoRoot, 'packages', 'cli')],
    ...opts,
  }).init();
}

/** "CODE: message" of the VirtkitError `p` fails with ('resolved' if it does not fail). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return VirtkitError.is(e) ? `${e.code}: ${e.message}` : `untyped: ${String(e)}`;
  }
}
