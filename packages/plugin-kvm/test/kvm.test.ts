// Real QEMU, real guest (scripts/build-test-guest.sh, run by scripts/test.sh first), under
// TCG where KVM is not really usable. Through virtiokit's API: the lifecycle, a qcow2 disk
// the guest sees, suspend/resume, graceful shutdown, destroy, crash detection, re-attach
// by a new manager.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { connect, Host, type Connection, type DomainEvent } from '@virtkit/core';

const repo = join(import.meta.dirname, '..', '..', '..');
const guest = join(repo, '.cache', 'test-guest');
const hasGuest = existsSync(join(guest, 'manifest.json'));

// Short roots: a unix socket path must stay under 108 bytes.
const root = mkdtempSync('/tmp/vk-');
const hostOptions = () => ({
  stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue'),
  pluginSearch: [join(repo, 'packages', 'cli')],
});

function vm(name: string, extra: Record<string, unknown> = {}) {
  const disk = join(root, `${name}.qcow2`);
  copyFileSync(join(guest, 'disk.qcow2'), disk);
  return {
    name, memoryMiB: 128, vcpus: 1,
    os: { type: 'hvm', kernel: join(guest, 'vmlinuz'), initrd: join(guest, 'initramfs.cpio.gz'), cmdline: 'console=ttyS0 quiet panic=-1' },
    devices: { disks: [{ source: disk, format: 'qcow2' }], serials: [{ logFile: join(root, `${name}.serial.log`) }] },
    driver: { qemu: { powerdownRetryMs: 300 } },
    ...extra,
  };
}

const serial = (name: string) => {
  try {
    return readFileSync(join(root, `${name}.serial.log`), 'utf8');
  } catch {
    return '';
  }
};

async function until<T>(what: string, f: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function qemuPid(c: Connection, name: string): Promise<number> {
  const uuid = (await c.getConfig(name)).uuid!;
  return Number(readFileSync(join(root, 'run', 'virtkit-plugin-kvm', 'system', uuid, 'qemu.pid'), 'utf8'));
}

const running = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

// Skipped only outside CI when the guest was never built (scripts/test.sh builds it).
describe.skipIf(!hasGuest && !process.env.CI)('qemu:///system with a real guest', () => {
  let host: Host;
  let conn: Connection;
  const events: DomainEvent[] = [];

  beforeAll(async () => {
    host = await new Host(hostOptions()).init();
    conn = await connect('qemu:///system', { host });
    conn.onEvent((e) => events.push(e));
  });
  afterAll(async () => {
    for (const d of (await conn?.listDomains()) ?? []) await conn.destroy(d.name).catch(() => {});
    await conn?.close();
    await host?.close();
  });

  it('reports the accelerator it chose, and the node', async () => {
    const node = await conn.nodeInfo();
    const facts = Object.fromEntries(node.facts);
    expect(node.hypervisor).toBe('QEMU');
    expect(node.hypervisorVersion).toMatch(/^\d+\.\d+/);
    expect(node.cpus).toBeGreaterThan(0);
    expect(facts['machine-types']).toMatch(/\bpc\b/);
    const hw = existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd');
    expect(facts.accelerator).toBe(hw && existsSync('/dev/kvm') ? 'kvm' : 'tcg');
  });

  it('boots the guest, which sees its qcow2 disk; suspends, resumes and shuts it down gracefully', async () => {
    await conn.define(vm('life'));
    expect(await conn.start('life')).toEqual({ state: 'running', reason: 'booted' });
    const pid = await qemuPid(conn, 'life');
    await until('the guest to be ready', () => serial('life').includes('VIRTKIT-GUEST-READY'));
    expect(serial('life')).toMatch(/VIRTKIT-GUEST-DISK vda 67108864/);
    const info = await conn.info('life');
    expect(info).toMatchObject({ state: 'running', vcpus: 1, memoryKib: 128n * 1024n });
    expect(info.cpuTimeNs).toBeGreaterThan(0n);
    expect(info.details).toMatchObject({ accelerator: Object.fromEntries((await conn.nodeInfo()).facts).accelerator });
    // Later calls are the host's (world 0.3.0 info-reuse): the driver's answer, with QEMU's CPU
    // time read from /proc as libvirt reads it; the driver is not run.
    const driverRun = vi.spyOn((await host.plugins.forScheme('qemu')).host, 'run');
    await new Promise((r) => setTimeout(r, 100));
    const again = await conn.info('life');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const procNs = (BigInt(f[11]!) + BigInt(f[12]!)) * 10_000_000n; // utime + stime, 100 ticks a second
    // (QMP events may run handle-event meanwhile: only info counts here.)
    expect(driverRun.mock.calls.filter(([req]) => req.kind === 'info')).toEqual([]);
    expect({ ...again, cpuTimeNs: 0n }).toEqual({ ...info, cpuTimeNs: 0n });
    expect(again.cpuTimeNs).toBeGreaterThanOrEqual(info.cpuTimeNs);
    expect(again.cpuTimeNs).toBeLessThanOrEqual(procNs);
    driverRun.mockRestore();

    await conn.suspend('life');
    const paused = await conn.info('life');
    await new Promise((r) => setTimeout(r, 300));
    expect((await conn.info('life')).cpuTimeNs - paused.cpuTimeNs).toBeLessThan(200_000_000n);
    await conn.resume('life');

    expect(await conn.shutdown('life', { timeoutMs: 20_000 })).toEqual({ state: 'shut-off', reason: 'shutdown' });
    expect(serial('life')).toContain('VIRTKIT-GUEST-POWEROFF');
    await until('QEMU to exit', () => !running(pid), 5000);
    expect(await conn.info('life')).toMatchObject({ state: 'shut-off', memoryKib: 0n, cpuTimeNs: 0n });
    expect(events.filter((e) => e.domain === 'life').map((e) => `${e.kind}/${e.reason}`)).toEqual([
      'defined/unknown', 'started/booted', 'suspended/user', 'resumed/unpaused', 'stopped/shutdown',
    ]);
  });

  it('streams the serial console; the bytes come from QEMU, not through the driver', async () => {
    await conn.define(vm('talker'));
    await conn.start('talker');
    const sock = await conn.console('talker');
    let seen = '';
    sock.on('data', (d) => (seen += d));
    await until('the guest to speak on its console', () => seen.includes('VIRTKIT-GUEST-READY'));
    expect(seen).toContain('VIRTKIT-GUEST-DISK vda');
    sock.destroy();
    await conn.destroy('talker');
    expect((await conn.console('talker').catch((e) => e)).code).toBe('OPERATION_INVALID');
  });

  it('puts a tap on an existing bridge, with a stable MAC, before the guest runs', async () => {
    const bridge = `vkbr${process.pid % 100000}`;
    execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
    try {
      await conn.define(vm('wired', { devices: { interfaces: [{ type: 'bridge', bridge }, { type: 'user' }] } }));
      await conn.start('wired');
      const ports = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'master', bridge]).toString()) as Array<{ ifname: string; operstate: string }>;
      expect(ports.map((p) => p.ifname)).toEqual([expect.stringMatching(/^vk[0-9a-f]{10}n0$/)]);
      const cmdline = readFileSync(`/proc/${await qemuPid(conn, 'wired')}/cmdline`, 'utf8').split('\0');
      const macs = cmdline.filter((a) => a.includes('netdev=net')).map((a) => /mac=([0-9a-f:]+)/.exec(a)?.[1]);
      expect(macs).toHaveLength(2);
      await conn.destroy('wired');
      await conn.start('wired');
      const again = readFileSync(`/proc/${await qemuPid(conn, 'wired')}/cmdline`, 'utf8').split('\0').filter((a) => a.includes('netdev=net')).map((a) => /mac=([0-9a-f:]+)/.exec(a)?.[1]);
      expect(again).toEqual(macs); // stable across starts
      await conn.destroy('wired');
      expect(JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'master', bridge]).toString())).toEqual([]);
      await conn.undefine('wired');
    } finally {
      execFileSync('ip', ['link', 'del', bridge]);
    }
  });

  it('refuses to start on a bridge that does not exist, leaving nothing behind', async () => {
    await conn.define(vm('unwired', { devices: { interfaces: [{ type: 'bridge', bridge: 'vk-no-such-br' }] } }));
    const e = await conn.start('unwired').catch((x) => x);
    expect(e.code).toBe('DRIVER_FAILED');
    expect(e.message).toMatch(/cannot put vk[0-9a-f]+n0 on bridge vk-no-such-br/);
    expect((await conn.listDomains({ all: true })).find((d) => d.name === 'unwired')?.state).toBe('shut-off');
    expect(spawnSync('pgrep', ['-f', 'guest=unwired,'], { encoding: 'utf8' }).stdout.trim()).toBe('');
    await conn.undefine('unwired');
  });

  it('destroys at once, and reports a guest that ignores the power button', async () => {
    await conn.define(vm('stubborn'));
    await conn.start('stubborn');
    const pid = await qemuPid(conn, 'stubborn');
    // Pressed before the guest's acpid runs, or too short a wait: the guest stays up.
    const e = await conn.shutdown('stubborn', { timeoutMs: 200 }).catch((x) => x);
    expect(e.code).toBe('TIMEOUT');
    expect(e.message).toMatch(/did not power off within 200 ms .* destroy forces it off/);
    expect((await conn.listDomains()).find((d) => d.name === 'stubborn')?.state).toBe('running');
    expect(await conn.destroy('stubborn')).toEqual({ state: 'shut-off', reason: 'destroyed' });
    expect(running(pid)).toBe(false);
  });

  it('detects QEMU dying from outside as a crash', async () => {
    await conn.define(vm('victim'));
    await conn.start('victim');
    const pid = await qemuPid(conn, 'victim');
    process.kill(pid, 'SIGKILL');
    await until('the crash event', () => events.some((e) => e.domain === 'victim' && e.kind === 'stopped'), 10_000);
    expect(events.filter((e) => e.domain === 'victim').at(-1)).toMatchObject({ kind: 'stopped', reason: 'crashed' });
    expect((await conn.listDomains({ all: true })).find((d) => d.name === 'victim')).toMatchObject({ state: 'shut-off', reason: 'crashed' });
  });

  it('a guest kernel panic reaches QEMU through pvpanic, and on_crash decides: destroy, or restart', async () => {
    const panicky = (name: string, onCrash: string) =>
      vm(name, { lifecycle: { onCrash }, os: { type: 'hvm', kernel: join(guest, 'vmlinuz'), initrd: join(guest, 'initramfs.cpio.gz'), cmdline: 'console=ttyS0 quiet panic=-1 virtkit.panic_after=0' } });
    await conn.define(panicky('panics', 'destroy'));
    await conn.start('panics');
    const pid = await qemuPid(conn, 'panics');
    await until('the panic to be reported', () => events.some((e) => e.domain === 'panics' && e.kind === 'crashed'), 30_000);
    expect(serial('panics')).toContain('VIRTKIT-GUEST-PANIC');
    expect(events.filter((e) => e.domain === 'panics').map((e) => `${e.kind}/${e.reason}`)).toEqual(['defined/unknown', 'started/booted', 'crashed/panicked']);
    expect((await conn.listDomains({ all: true })).find((d) => d.name === 'panics')).toMatchObject({ state: 'crashed', reason: 'panicked' });
    await until('QEMU to be gone', () => !running(pid), 5000);

    await conn.define(panicky('phoenix', 'restart'));
    await conn.start('phoenix');
    await until('the restart after the panic', () => events.some((e) => e.domain === 'phoenix' && e.kind === 'crashed') && events.filter((e) => e.domain === 'phoenix' && e.kind === 'started').length === 2, 30_000);
    expect((await conn.listDomains()).find((d) => d.name === 'phoenix')).toMatchObject({ state: 'running', reason: 'booted' });
    await conn.destroy('phoenix');
    await conn.undefine('phoenix');
    await conn.undefine('panics');
  });

  it('a new manager re-attaches running domains and marks the ones that died meanwhile as crashed', async () => {
    await conn.define(vm('keeper'));
    await conn.define(vm('goner'));
    await conn.start('keeper');
    await conn.start('goner');
    const keeperPid = await qemuPid(conn, 'keeper');
    const gonerPid = await qemuPid(conn, 'goner');
    await conn.close();
    await host.close(); // the manager goes away; QEMU, detached, does not
    expect(running(keeperPid)).toBe(true);
    process.kill(gonerPid, 'SIGKILL');
    await until('goner to die', () => !running(gonerPid), 5000);

    host = await new Host(hostOptions()).init();
    conn = await connect('qemu:///system', { host });
    conn.onEvent((e) => events.push(e));
    const list = await conn.listDomains({ all: true });
    expect(list.find((d) => d.name === 'keeper')).toMatchObject({ state: 'running' });
    expect(list.find((d) => d.name === 'goner')).toMatchObject({ state: 'shut-off', reason: 'crashed' });
    expect(list.map((d) => d.name).sort()).toEqual(['goner', 'keeper', 'life', 'stubborn', 'talker', 'victim']);
    // and the re-attached one is fully controllable
    await conn.suspend('keeper');
    await conn.resume('keeper');
    expect(await conn.destroy('keeper')).toEqual({ state: 'shut-off', reason: 'destroyed' });
    expect(running(keeperPid)).toBe(false);
  });
});
