// Embedded mode across processes: each `virtkit` command is a short-lived manager. A VM
// outlives the command that started it; the next command finds it again; a manager
// killed with SIGKILL mid-operation loses no definition and leaves old or new state.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const repo = join(import.meta.dirname, '..', '..', '..');
const guest = join(repo, '.cache', 'test-guest');
const cli = join(repo, 'packages', 'cli', 'bin', 'virtkit.js');
const root = mkdtempSync('/tmp/vk-');
const env = { ...process.env, VIRTKIT_CONFIG: join(root, 'virtkit.json') };

function virtkit(...cmd: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, '-c', 'qemu:///system', '--json', ...cmd], { env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function domain(name: string) {
  const r = virtkit('list', '--all');
  expect(r.code, r.err).toBe(0);
  return (JSON.parse(r.out) as Array<{ name: string; state: string; reason: string }>).find((d) => d.name === name);
}

function qemuOf(name: string): number[] {
  const out = spawnSync('pgrep', ['-f', `guest=${name},debug-threads`], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter(Boolean).map(Number);
}

/** SIGKILL a child (if it still runs) and wait until it is gone. */
async function killNow(child: ReturnType<typeof spawn>): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await exited;
}

function define(name: string) {
  const disk = join(root, `${name}.qcow2`);
  copyFileSync(join(guest, 'disk.qcow2'), disk);
  const file = join(root, `${name}.json`);
  writeFileSync(file, JSON.stringify({
    name, memoryMiB: 128, vcpus: 1,
    os: { type: 'hvm', kernel: join(guest, 'vmlinuz'), initrd: join(guest, 'initramfs.cpio.gz'), cmdline: 'console=ttyS0 quiet panic=-1' },
    devices: { disks: [{ source: disk, format: 'qcow2' }], serials: [{ logFile: join(root, `${name}.log`) }] },
  }));
  expect(virtkit('define', file).code).toBe(0);
}

describe.skipIf(!existsSync(join(guest, 'manifest.json')) && !process.env.CI)('managers that come and go', () => {
  beforeAll(() => {
    writeFileSync(env.VIRTKIT_CONFIG, JSON.stringify({ stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue') }));
  });
  afterAll(() => {
    for (const n of ['outlives', 'interrupted', 'halfway']) for (const pid of qemuOf(n)) process.kill(pid, 'SIGKILL');
  });

  it('a VM outlives the command that started it, and the next command controls it', () => {
    define('outlives');
    expect(virtkit('start', 'outlives').code).toBe(0);
    const [pid] = qemuOf('outlives');
    expect(pid).toBeGreaterThan(0);
    expect(domain('outlives')).toMatchObject({ state: 'running' });
    const info = JSON.parse(virtkit('dominfo', 'outlives').out);
    expect(info.state).toBe('running');
  });

  it('`virtkit console` in a later process streams the guest\'s console, as JSON lines with --json', async () => {
    const child = spawn(process.execPath, [cli, '-c', 'qemu:///system', 'console', 'outlives', '--json', '--no-stdin'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const text = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).data).join('');
    // Attached once the first bytes could flow; a reset makes the guest boot (and speak) again.
    await new Promise((r) => setTimeout(r, 1500));
    expect(virtkit('reset', 'outlives').code).toBe(0);
    const end = Date.now() + 20_000;
    while (!text().includes('VIRTKIT-GUEST-READY') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    await killNow(child);
    expect(text()).toContain('VIRTKIT-GUEST-READY');
  });

  it('destroy in yet another process stops it', () => {
    expect(virtkit('destroy', 'outlives').code).toBe(0);
    expect(domain('outlives')).toMatchObject({ state: 'shut-off', reason: 'destroyed' });
    expect(qemuOf('outlives')).toEqual([]);
  });

  it('a manager killed while starting leaves the domain off (no orphan QEMU) or running, never lost', async () => {
    define('interrupted');
    for (const delay of [150, 250, 350, 450, 600]) {
      const child = spawn(process.execPath, [cli, '-c', 'qemu:///system', 'start', 'interrupted'], { env, stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, delay));
      await killNow(child);
      const d = domain('interrupted');
      expect(d, `definition lost after a kill at ${delay} ms`).toBeDefined();
      const procs = qemuOf('interrupted');
      if (d!.state === 'running') expect(procs.length).toBe(1);
      else {
        expect(d!.state).toBe('shut-off');
        expect(procs, `orphan QEMU after a kill at ${delay} ms`).toEqual([]);
      }
      if (d!.state === 'running') expect(virtkit('destroy', 'interrupted').code).toBe(0);
    }
  });

  it('a manager killed while shutting down: the next one finds the guest off or still running', async () => {
    define('halfway');
    expect(virtkit('start', 'halfway').code).toBe(0);
    const log = join(root, 'halfway.log');
    const end = Date.now() + 30_000;
    while (!(existsSync(log) && readFileSync(log, 'utf8').includes('VIRTKIT-GUEST-READY'))) {
      if (Date.now() > end) throw new Error('guest not ready');
      await new Promise((r) => setTimeout(r, 50));
    }
    const child = spawn(process.execPath, [cli, '-c', 'qemu:///system', 'shutdown', 'halfway'], { env, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 180));
    await killNow(child);
    // The guest may have powered off meanwhile (QEMU then waits, paused): on_poweroff applies now.
    await new Promise((r) => setTimeout(r, 300));
    const d = domain('halfway')!;
    expect(['running', 'shut-off']).toContain(d.state);
    expect(qemuOf('halfway').length).toBe(d.state === 'running' ? 1 : 0);
    if (d.state === 'running') expect(virtkit('destroy', 'halfway').code).toBe(0);
    expect(execFileSync('ls', [join(root, 'state')]).toString()).toContain('nodes');
  });
});
