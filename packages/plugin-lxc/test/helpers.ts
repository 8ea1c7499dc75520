// What the real-container tests share: the test root file system, and waiting for a condition.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const repo = join(import.meta.dirname, '..', '..', '..');
export const rootfs = join(repo, '.cache', 'test-rootfs', 'rootfs');
/** Skipped only outside CI when the rootfs was never built (scripts/test.sh builds it). */
export const noRootfs = !existsSync(join(repo, '.cache', 'test-rootfs', 'manifest.json')) && !process.env.CI;

export async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
