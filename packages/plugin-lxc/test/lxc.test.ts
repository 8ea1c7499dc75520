// Real LXC containers (the busybox root file system of scripts/build-test-rootfs.sh, which
// scripts/test.sh runs first), through virtkit's API exactly as a VM: the lifecycle and its
// events, limits that the kernel enforces (a process past the memory limit is OOM-killed, the
// container stays manageable), freeze/thaw, graceful and forced stop, reboot, console, exec.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { noRootfs, repo, rootfs, until } from './helpers.js';
import { connect, Host, type Connection, type DomainEvent } from '@virtkit/core';


// Short roots: a unix socket path must stay under 108 bytes.
const root = mkdtempSync('/tmp/vk-');
const logs: string[] = [];
const hostOptions = () => ({
  stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue'),
  pluginSearch: [], pluginPaths: [join(repo, 'packages', 'plugin-lxc')],
  onLog: (_p: string, level: string, m: string) => logs.push(`${level}: ${m}`),
});

function ct(name: string, extra: Record<string, unknown> = {}, os: Record<string, unknown> = {}) {
  return { name, memoryMiB: 64, vcpus: 1, os: { type: 'container', rootfs, hostname: `h-${name}`, env: { VIRTKIT_GREETING: `hi-${name}` }, ...os }, ...extra };
}


const dirOf = async (c: Connection, name: string) => join(root, 'run', 'virtkit-plugin-lxc', 'system', (await c.getConfig(name)).uuid!);
const consoleLog = async (c: Connection, name: string) => {
  try {
    return readFileSync(join(await dirOf(c, name), 'console.log'), 'utf8');
  } catch {
    return '';
  }
};
const lxcState = async (c: Connection, name: string) => {
  const uuid = (await c.getConfig(name)).uuid!;
  try {
    return execFileSync('lxc-info', ['-n', uuid, '-P', join(root, 'run', 'virtkit-plugin-lxc', 'system'), '-s', '-H'], { encoding: 'utf8' }).trim();
  } catch {
    return 'ABSENT';
  }
};
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe.skipIf(noRootfs)('lxc:///system with real containers', () => {
  let host: Host;
  let conn: Connection;
  const events: DomainEvent[] = [];

  beforeAll(async () => {
    host = await new Host(hostOptions()).init();
    conn = await connect('lxc:///system', { host });
    conn.onEvent((e) => events.push(e));
  });
  afterAll(async () => {
    for (const d of (await conn?.listDomains()) ?? []) await conn.destroy(d.name).catch(() => {});
    await conn?.close();
    await host?.close();
  });

  it('reports the node: LXC, the cgroup hierarchy it found', async () => {
    const node = await conn.nodeInfo();
    expect(node.hypervisor).toBe('LXC');
    expect(node.hypervisorVersion).toMatch(/^\d+\.\d+/);
    const facts = Object.fromEntries(node.facts);
    expect(facts.cgroup).toBe(existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes') ? 'v1' : 'v2');
  });

  it('defines, starts, suspends, resumes and shuts a container down gracefully, with the events of a VM', async () => {
    await conn.define(ct('life'));
    expect(await conn.start('life')).toEqual({ state: 'running', reason: 'booted' });
    await until('init to greet', async () => (await consoleLog(conn, 'life')).includes('VIRTKIT-CT-READY h-life hi-life'));
    const info = await conn.info('life');
    expect(info).toMatchObject({ state: 'running', vcpus: 1, maxMemoryKib: 64n * 1024n });
    expect(info.memoryKib).toBeGreaterThan(0n);
    expect(info.cpuTimeNs).toBeGreaterThan(0n);
    expect(info.details).toMatchObject({ lxcState: 'RUNNING', memoryLimitBytes: 64 * 1024 * 1024 });
    const initPid = (info.details as { initPid: number }).initPid;
    expect(readFileSync(`/proc/${initPid}/cmdline`, 'utf8')).toContain('/sbin/init');

    await conn.suspend('life');
    expect(await lxcState(conn, 'life')).toBe('FROZEN');
    expect((await conn.info('life')).state).toBe('paused');
    expect(readFileSync(`/proc/${initPid}/stat`, 'utf8')).toMatch(/\) [DS] /); // frozen tasks sleep in the freezer
    await conn.resume('life');
    expect(await lxcState(conn, 'life')).toBe('RUNNING');

    expect(await conn.shutdown('life', { timeoutMs: 10_000 })).toEqual({ state: 'shut-off', reason: 'shutdown' });
    expect(await consoleLog(conn, 'life').catch(() => '')).toBe(''); // its runtime dir is gone
    expect(existsSync(`/proc/${initPid}`)).toBe(false);
    expect(await lxcState(conn, 'life')).toBe('ABSENT');
    expect(events.filter((e) => e.domain === 'life').map((e) => `${e.kind}/${e.reason}`)).toEqual([
      'defined/unknown', 'started/booted', 'suspended/user', 'resumed/unpaused', 'stopped/shutdown',
    ]);
    await conn.undefine('life');
  });

  it('a container ignoring the halt signal: shutdown times out and says destroy forces it; destroy does', async () => {
    await conn.define(ct('stubborn', {}, { env: { VIRTKIT_IGNORE_HALT: '1' } }));
    await conn.start('stubborn');
    await until('init to greet', async () => (await consoleLog(conn, 'stubborn')).includes('VIRTKIT-CT-READY'));
    const err = await conn.shutdown('stubborn', { timeoutMs: 1000 }).catch((e) => e);
    expect(err.code).toBe('TIMEOUT');
    expect(err.message).toMatch(/destroy forces it off/);
    expect((await conn.info('stubborn')).state).toBe('running');
    expect(await conn.destroy('stubborn')).toEqual({ state: 'shut-off', reason: 'destroyed' });
    expect(await lxcState(conn, 'stubborn')).toBe('ABSENT');
  });

  it('reboots: the init runs again, a rebooted event', async () => {
    await conn.define(ct('again'));
    await conn.start('again');
    await until('init to greet', async () => (await consoleLog(conn, 'again')).includes('VIRTKIT-CT-READY'));
    const before = ((await conn.info('again')).details as { initPid: number }).initPid;
    expect(await conn.reboot('again')).toEqual({ state: 'running', reason: 'booted' });
    const after = ((await conn.info('again')).details as { initPid: number }).initPid;
    expect(after).not.toBe(before);
    await until('init to greet twice', async () => (await consoleLog(conn, 'again')).split('VIRTKIT-CT-READY').length === 3);
    await new Promise((r) => setTimeout(r, 300)); // room for a (wrong) second event
    expect(events.filter((e) => e.domain === 'again').map((e) => e.kind)).toEqual(['defined', 'started', 'rebooted']);
    // A reboot from inside (the init calls reboot(2)): reported, and the container is watched on.
    await conn.exec('again', ['kill', '-INT', '1']);
    await until('the rebooted event', () => events.filter((e) => e.domain === 'again' && e.kind === 'rebooted').length === 2);
    expect((await conn.info('again')).state).toBe('running');
    expect(((await conn.info('again')).details as { initPid: number }).initPid).not.toBe(after);
    await conn.exec('again', ['kill', '-USR2', '1']);
    await until('the stop event', () => events.some((e) => e.domain === 'again' && e.kind === 'stopped'));
    expect(events.filter((e) => e.domain === 'again').map((e) => `${e.kind}/${e.reason}`).slice(2)).toEqual(['rebooted/booted', 'rebooted/booted', 'stopped/shutdown']);
    await conn.start('again');
    await conn.destroy('again');
  });

  it('a container whose init exits by itself is reported stopped', async () => {
    await conn.define(ct('brief', {}, { init: ['/bin/sh', '-c', 'echo short lived; sleep 0.5'] }));
    await conn.start('brief');
    await until('the stop event', () => events.some((e) => e.domain === 'brief' && e.kind === 'stopped'));
    expect((await conn.listDomains({ all: true })).find((d) => d.name === 'brief')).toMatchObject({ state: 'shut-off', reason: 'shutdown' });
  });

  it('exec runs a command inside (lxc-attach): output, environment, cwd, stdin, exit code passed through', async () => {
    await conn.define(ct('shell'));
    await conn.start('shell');
    const r = await conn.exec('shell', ['/bin/sh', '-c', 'echo "$FOO in $(pwd) on $(hostname)"; cat; echo oops >&2; exit 7'], { env: { FOO: 'bar' }, cwd: '/tmp', stdin: 'from stdin\n' });
    expect(r.exitCode).toBe(7);
    expect(r.signal).toBeNull();
    expect(text(r.stdout)).toBe('bar in /tmp on h-shell\nfrom stdin\n');
    expect(text(r.stderr)).toBe('oops\n');
    expect((await conn.exec('shell', ['true'])).exitCode).toBe(0);
    expect((await conn.exec('shell', ['/bin/sh', '-c', 'echo $PATH'])).stdout).toSatisfy((o: Uint8Array) => text(o).includes('/usr/bin'));
  });

  it('an exec over its timeout is stopped inside the container too, not only lxc-attach', async () => {
    const marker = `${4000 + Math.floor(Math.random() * 1000)}`;
    // The container's pid namespace is a child of ours: pgrep sees the command inside.
    const running = () => spawnSync('pgrep', ['-f', `^sleep ${marker}$`]).status === 0;
    const exec = conn.exec('shell', ['sleep', marker], { timeoutMs: 1000 }).then((r) => r, (x: unknown) => x);
    await until('the command to run inside', running, 3000);
    expect(await exec).toMatchObject({ code: 'TIMEOUT' });
    await until('the command inside to be gone', () => !running(), 3000);
  });

  it('streams the console: bytes from the container\'s /dev/console, through the relay, not the driver', async () => {
    const sock = await conn.console('shell');
    let seen = '';
    sock.on('data', (d) => (seen += d));
    await new Promise((r) => setTimeout(r, 300)); // lxc-console attached
    await conn.exec('shell', ['/bin/sh', '-c', 'echo VIRTKIT-CONSOLE-$((6*7)) > /dev/console']);
    await until('the console to speak', () => seen.includes('VIRTKIT-CONSOLE-42'));
    sock.destroy();
    // A second client gets a console again.
    const again = await conn.console('shell');
    let seen2 = '';
    again.on('data', (d) => (seen2 += d));
    await new Promise((r) => setTimeout(r, 300));
    await conn.exec('shell', ['/bin/sh', '-c', 'echo VIRTKIT-SECOND > /dev/console']);
    await until('the console to speak again', () => seen2.includes('VIRTKIT-SECOND'));
    again.destroy();
    await conn.destroy('shell');
    expect((await conn.console('shell').catch((e) => e)).code).toBe('OPERATION_INVALID');
  });

  it('enforces the memory limit: a process allocating past it is OOM-killed, the container stays manageable', async () => {
    await conn.define(ct('small', { memoryMiB: 32, driver: { lxc: { pidsMax: 16, cpuShares: 512, cpuset: '0' } } }));
    await conn.start('small');
    const uuid = (await conn.getConfig('small')).uuid!;
    const cfg = readFileSync(join(await dirOf(conn, 'small'), 'config'), 'utf8');
    expect(cfg).toContain(`lxc.cgroup.memory.limit_in_bytes = ${32 << 20}`);
    if (existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes')) expect(cfg).toContain(`lxc.cgroup.memory.memsw.limit_in_bytes = ${32 << 20}`);
    expect(cfg).toContain('lxc.cgroup.relative = 1');
    // The container's cgroup is inside ours (lxc.cgroup.relative).
    const initPid = ((await conn.info('small')).details as { initPid: number }).initPid;
    const mine = readFileSync('/proc/self/cgroup', 'utf8').match(/^\d+:memory:(.*)$/m)![1]!;
    const its = readFileSync(`/proc/${initPid}/cgroup`, 'utf8').match(/^\d+:memory:(.*)$/m)![1]!;
    expect(its).toBe(`${mine === '/' ? '' : mine}/lxc.payload.${uuid}`);
    expect(readFileSync(`/sys/fs/cgroup/memory${its}/memory.limit_in_bytes`, 'utf8').trim()).toBe(String(32 << 20));
    expect(readFileSync(`/sys/fs/cgroup/pids${its.replace(mine === '/' ? '' : mine, '')}/pids.max`, 'utf8').trim()).toBe('16');
    // CPU shares and cpuset, read back from the init's own cgroups in those hierarchies.
    const cgroupOf = (controller: string) => readFileSync(`/proc/${initPid}/cgroup`, 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[1]?.split(',').includes(controller))![2]!;
    expect(readFileSync(`/sys/fs/cgroup/cpu${cgroupOf('cpu')}/cpu.shares`, 'utf8').trim()).toBe('512');
    expect(readFileSync(`/sys/fs/cgroup/cpuset${cgroupOf('cpuset')}/cpuset.cpus`, 'utf8').trim()).toBe('0');

    // 64 MiB in one buffer, touched: past the 32 MiB limit.
    const hog = await conn.exec('small', ['/bin/dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1']);
    expect(hog.exitCode === 137 || hog.signal === 'SIGKILL', `dd ended ${hog.exitCode}/${hog.signal}: ${text(hog.stderr)}`).toBe(true);
    const info = await conn.info('small');
    expect((info.details as { oomKills: number }).oomKills).toBeGreaterThanOrEqual(1);
    expect(info.state).toBe('running');
    // Under the limit, the same works.
    expect((await conn.exec('small', ['/bin/dd', 'if=/dev/zero', 'of=/dev/null', 'bs=8M', 'count=1'])).exitCode).toBe(0);
    // pids.max: a fork bomb stops at the limit.
    const forks = await conn.exec('small', ['/bin/sh', '-c', 'for i in $(seq 1 40); do sleep 5 >/dev/null 2>&1 & done 2>/dev/null; echo $(jobs -p | wc -l)'], { timeoutMs: 20_000 });
    expect(Number(text(forks.stdout).trim())).toBeLessThan(16);
    expect(await conn.destroy('small')).toEqual({ state: 'shut-off', reason: 'destroyed' });
  });

  it('denies devices beyond the usual character devices: a device node can be made, not opened', async () => {
    await conn.define(ct('nodev'));
    await conn.start('nodev');
    // The host's kernel log and its first disk, through device nodes made inside.
    const r = await conn.exec('nodev', ['/bin/sh', '-c', 'mknod /tmp/kmsg c 1 11 && mknod /tmp/disk b 254 0 && (head -c 1 /tmp/kmsg; head -c 1 /tmp/disk; echo ok > /dev/null && echo null-ok)']);
    const err = text(r.stderr);
    expect(err).toMatch(/\/tmp\/kmsg: Operation not permitted/);
    expect(err).toMatch(/\/tmp\/disk: Operation not permitted/);
    expect(text(r.stdout)).toBe('null-ok\n');
    expect(readFileSync(join(await dirOf(conn, 'nodev'), 'config'), 'utf8')).toMatch(/^lxc\.cgroup2?\.devices\.deny = a$/m);
    await conn.destroy('nodev');
  });

  it('a cancelled start leaves no container behind: the record and LXC agree, whenever it is cancelled', async () => {
    await conn.define(ct('cancelled'));
    const uuid = (await conn.getConfig('cancelled')).uuid!;
    const lxcpath = join(root, 'run', 'virtkit-plugin-lxc', 'system');
    const lxcState = () => spawnSync('lxc-info', ['-n', uuid, '-P', lxcpath, '-s', '-H'], { encoding: 'utf8' }).stdout.trim() || 'ABSENT';
    const outcomes = new Set<string>();
    for (const ms of [2, 8, 14, 20, 26, 60]) {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), ms);
      const got = await conn.start('cancelled', { signal: ac.signal }).then((st) => st.state, (e: { code: string }) => e.code);
      outcomes.add(got);
      const recorded = (await conn.listDomains({ all: true })).find((d) => d.name === 'cancelled')!.state;
      expect([got, recorded, lxcState()]).toEqual(got === 'CANCELLED' ? ['CANCELLED', 'shut-off', 'ABSENT'] : ['running', 'running', 'RUNNING']);
      if (recorded === 'running') await conn.destroy('cancelled');
    }
    // Cancelled early, the start never got far; later, it completed.
    expect(outcomes.has('CANCELLED')).toBe(true);
  });

  it('rejects what a container cannot be', async () => {
    const err = await conn.define({ name: 'vm', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' } }).catch((e) => e);
    expect(err.code).toBe('INVALID_CONFIG');
    const nat = await conn.define(ct('nat', { devices: { interfaces: [{ type: 'user' }] } })).catch((e) => e);
    expect(nat.code).toBe('INVALID_CONFIG');
  });

  it('puts a veth on an existing bridge, with a stable MAC', async () => {
    const bridge = `vkbr${process.pid % 100000}`;
    execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
    try {
      await conn.define(ct('wired', { devices: { interfaces: [{ type: 'bridge', bridge }] } }));
      await conn.start('wired');
      const ports = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'master', bridge]).toString()) as Array<{ ifname: string }>;
      expect(ports.map((p) => p.ifname)).toEqual([expect.stringMatching(/^vc[0-9a-f]{10}n0$/)]);
      const mac = text((await conn.exec('wired', ['cat', '/sys/class/net/eth0/address'])).stdout).trim();
      expect(mac).toMatch(/^00:16:3e:/);
      await conn.destroy('wired');
      await conn.start('wired');
      expect(text((await conn.exec('wired', ['cat', '/sys/class/net/eth0/address'])).stdout).trim()).toBe(mac);
      await conn.destroy('wired');
      expect(JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'master', bridge]).toString())).toEqual([]);
    } finally {
      execFileSync('ip', ['link', 'del', bridge]);
    }
  });

  it('without interfaces, a container has only loopback', async () => {
    await conn.define(ct('alone'));
    await conn.start('alone');
    const r = await conn.exec('alone', ['ls', '/sys/class/net']);
    expect(text(r.stdout).trim()).toBe('lo');
    await conn.destroy('alone');
  });
});
