// Shared by the daemon tests that run a real tiny guest (scripts/build-test-guest.sh).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect, Host } from '@virtkit/core';

export const repo = join(import.meta.dirname, '..', '..', '..');
export const DAEMON = join(repo, 'packages', 'daemon', 'bin', 'virtkitd.js');
export const guest = join(repo, '.cache', 'test-guest');
export const hasGuest = existsSync(join(guest, 'manifest.json'));

/** Host options for core in-process, on the same roots the daemon under test uses. */
export const hostOptions = (root: string) => ({
  stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue'),
  pluginSearch: [join(repo, 'packages', 'cli')],
});

/** A tiny-guest domain config with its own copy of the qcow2 disk under root. */
export function tinyVm(root: string, name: string, extra: { serialLog?: string; driver?: Record<string, unknown> } = {}) {
  const disk = join(root, `${name}.qcow2`);
  copyFileSync(join(guest, 'disk.qcow2'), disk);
  return {
    name, memoryMiB: 128, vcpus: 1,
    os: { type: 'hvm', kernel: join(guest, 'vmlinuz'), initrd: join(guest, 'initramfs.cpio.gz'), cmdline: 'console=ttyS0 quiet panic=-1' },
    devices: { disks: [{ source: disk, format: 'qcow2' }], ...(extra.serialLog ? { serials: [{ logFile: extra.serialLog }] } : {}) },
    ...(extra.driver ? { driver: extra.driver } : {}),
  };
}

/** The pids of the QEMU processes running the domain (its argv has `-name guest=NAME,...`). */
export const qemuPids = (name: string): number[] =>
  spawnSync('pgrep', ['-f', `guest=${name},`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);

export async function until(what: string, f: () => boolean, ms = 30_000, stepMs = 25): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * Teardown for a test whose daemon ran real guests on the node under root: destroy every
 * active domain through core, SIGKILL any QEMU of `names` still running, remove root.
 */
export async function stopGuests(root: string, names: string[]): Promise<void> {
  const host = await new Host(hostOptions(root)).init();
  try {
    const conn = await connect('qemu:///system', { host });
    for (const d of await conn.listDomains()) await conn.destroy(d.name).catch(() => {});
    await conn.close();
  } catch {
    // the pgrep sweep below still ends any QEMU
  } finally {
    await host.close();
  }
  for (const name of names) for (const pid of qemuPids(name)) process.kill(pid, 'SIGKILL');
  rmSync(root, { recursive: true, force: true });
}
