// Unprivileged users: qemu:///session run by a user the test creates (its state in the
// user's own dirs, its QEMU running as that user), and -runas for qemu:///system so a grant
// to run QEMU is not root file access. Needs root to create the user.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, Host } from '@virtkit/core';

const repo = join(import.meta.dirname, '..', '..', '..');
const guest = join(repo, '.cache', 'test-guest');
const cli = join(repo, 'packages', 'cli', 'bin', 'virtkit.js');
const user = 'vktest';
const isRoot = process.getuid?.() === 0;

const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const qemuPids = (name: string) => spawnSync('pgrep', ['-f', `guest=${name},`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);

describe.skipIf(!isRoot || (!existsSync(join(guest, 'manifest.json')) && !process.env.CI))('unprivileged users', () => {
  let home: string;
  let uid: number;

  beforeAll(() => {
    if (spawnSync('id', [user]).status !== 0) execFileSync('useradd', ['--create-home', '--shell', '/usr/sbin/nologin', user]);
    uid = Number(execFileSync('id', ['-u', user]).toString());
    home = execFileSync('getent', ['passwd', user]).toString().split(':')[5]!;
  });
  afterAll(() => {
    for (const n of ['mine', 'dropped']) for (const pid of qemuPids(n)) process.kill(pid, 'SIGKILL');
    spawnSync('userdel', ['--remove', user]);
  });

  function asUser(...cmd: string[]) {
    return spawnSync('setpriv', ['--reuid', user, '--regid', user, '--init-groups', 'env', `HOME=${home}`, 'XDG_RUNTIME_DIR=', process.execPath, cli, '-c', 'qemu:///session', '--json', ...cmd], { encoding: 'utf8', cwd: home, timeout: 60_000 });
  }

  it('qemu:///session: a user manages their own VMs, kept in their own dirs, run as themselves', () => {
    const disk = join(home, 'mine.qcow2');
    copyFileSync(join(guest, 'disk.qcow2'), disk);
    chownSync(disk, uid, uid);
    const file = join(home, 'mine.json');
    writeFileSync(file, JSON.stringify({ name: 'mine', memoryMiB: 128, vcpus: 1, os: { type: 'hvm', kernel: join(guest, 'vmlinuz'), initrd: join(guest, 'initramfs.cpio.gz') }, devices: { disks: [{ source: disk, format: 'qcow2' }] } }));
    const r = asUser('define', file);
    expect(r.status, r.stderr).toBe(0);
    expect(asUser('start', 'mine').status).toBe(0);
    const [pid] = qemuPids('mine');
    expect(uidOf(pid!)).toBe(uid);
    expect(existsSync(join(home, '.local/share/virtkit/plugins/virtkit-plugin-kvm'))).toBe(true);
    expect(JSON.parse(asUser('list', '--all').stdout)).toEqual([expect.objectContaining({ name: 'mine', state: 'running' })]);
    expect(asUser('destroy', 'mine').status).toBe(0);
    expect(qemuPids('mine')).toEqual([]);
  });

  it('qemu:///system with runAs: QEMU drops to that user after opening its files', async () => {
    const root = mkdtempSync('/tmp/vk-');
    const host = await new Host({ stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue'), pluginSearch: [join(repo, 'packages', 'cli')] }).init();
    const conn = await connect('qemu:///system', { host });
    try {
      const disk = join(root, 'dropped.qcow2');
      copyFileSync(join(guest, 'disk.qcow2'), disk);
      await conn.define({
        name: 'dropped', memoryMiB: 128, vcpus: 1,
        os: { type: 'hvm', kernel: join(guest, 'vmlinuz'), initrd: join(guest, 'initramfs.cpio.gz'), cmdline: 'console=ttyS0 quiet' },
        devices: { disks: [{ source: disk, format: 'qcow2' }] },
        driver: { qemu: { runAs: user } },
      });
      await conn.start('dropped');
      const [pid] = qemuPids('dropped');
      expect(uidOf(pid!)).toBe(uid);
      await conn.suspend('dropped'); // QMP still works after the drop
      expect(await conn.destroy('dropped')).toEqual({ state: 'shut-off', reason: 'destroyed' });
    } finally {
      await conn.close();
      await host.close();
    }
  });
});
