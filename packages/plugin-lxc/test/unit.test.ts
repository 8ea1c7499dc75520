// Unit tests of the driver's logic, in-process (no Wasm, no LXC): the LXC config it writes,
// and the cgroup v2 branch, which cannot run on this machine (its v2 hierarchy has only
// hugetlb), through a FAKE node whose /sys/fs/cgroup is a v2 hierarchy.
import { describe, expect, it } from 'vitest';
import { runOperation } from '@virtkit/driver-sdk/testing';
import { buildConfig, cgroupLimits, containerPaths, sharesToWeight, stableMac, vethName, type DomainConfig } from '../src/config.js';
import { driver } from '../src/driver.js';

const uuid = '6b1c2a9e-8c61-4a57-9a8e-3d7f1c2b9a10';
const base: DomainConfig = { name: 'web', uuid, memoryMiB: 64, vcpus: 1, os: { type: 'container', rootfs: '/srv/web' } };
const paths = containerPaths('/run/vk', uuid);
const v1 = { version: 1, memsw: true } as const;
const v2 = { version: 2, memsw: false } as const;
const keys = (text: string) => text.split('\n').filter((l) => l.startsWith('lxc.'));

describe('LXC config', () => {
  it('a rootfs, hostname, environment, no network but loopback, unconfined, inside the manager\'s cgroup', () => {
    const { text, warnings } = buildConfig({ ...base, os: { ...base.os, hostname: 'web1', env: { A: '1', B: 'two words' } } }, paths, v1);
    expect(warnings).toEqual([]);
    expect(keys(text)).toEqual(expect.arrayContaining([
      'lxc.uts.name = web1', 'lxc.rootfs.path = dir:/srv/web', 'lxc.apparmor.profile = unconfined', 'lxc.cgroup.relative = 1',
      `lxc.console.logfile = /run/vk/${uuid}/console.log`, 'lxc.signal.halt = SIGPWR', 'lxc.environment = A=1', 'lxc.environment = B=two words',
      'lxc.net.0.type = empty',
    ]));
    expect(text).not.toContain('lxc.init.cmd'); // the init goes to lxc-start as argv
    expect(buildConfig(base, paths, v1).text).toContain('lxc.uts.name = web');
  });

  it('cgroup v1: the memory limit covers swap too where swap is accounted (memsw), shares, cpuset, pids', () => {
    const c: DomainConfig = { ...base, driver: { lxc: { cpuShares: 512, cpuset: '0-1', pidsMax: 64 } } };
    expect(cgroupLimits(c, v1).keys).toEqual([
      ['memory.limit_in_bytes', String(64 << 20)], ['memory.memsw.limit_in_bytes', String(64 << 20)],
      ['cpu.shares', '512'], ['cpuset.cpus', '0-1'], ['pids.max', '64'],
    ]);
    expect(cgroupLimits(c, { version: 1, memsw: false }).keys.map(([k]) => k)).not.toContain('memory.memsw.limit_in_bytes');
    expect(keys(buildConfig(c, paths, v1).text)).toContain(`lxc.cgroup.memory.limit_in_bytes = ${64 << 20}`);
  });

  it('cgroup v2 branch (not runnable on this host): lxc.cgroup2 keys, no swap, cpu.weight from the shares', () => {
    const c: DomainConfig = { ...base, driver: { lxc: { cpuShares: 1024, cpuset: '1', pidsMax: 10 } } };
    const v2keys = keys(buildConfig(c, paths, v2).text).filter((l) => l.startsWith('lxc.cgroup'));
    // Devices: deny all, then the usual character devices (the v2 keys LXC turns into a BPF program).
    expect(v2keys.filter((l) => l.includes('.devices.'))[0]).toBe('lxc.cgroup2.devices.deny = a');
    expect(v2keys).toContain('lxc.cgroup2.devices.allow = c 1:3 rwm');
    expect(v2keys.some((l) => /^lxc\.cgroup\.devices/.test(l))).toBe(false);
    expect(v2keys.filter((l) => !l.includes('.devices.'))).toEqual([
      'lxc.cgroup.relative = 1',
      `lxc.cgroup2.memory.max = ${64 << 20}`, 'lxc.cgroup2.memory.swap.max = 0', `lxc.cgroup2.cpu.weight = ${sharesToWeight(1024)}`,
      'lxc.cgroup2.cpuset.cpus = 1', 'lxc.cgroup2.pids.max = 10',
    ]);
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(39);
    expect(sharesToWeight(262144)).toBe(10000);
  });

  it('raw cgroup keys: the host\'s version applies, the other is ignored with a warning', () => {
    const c: DomainConfig = { ...base, driver: { lxc: { cgroup: { v1: { 'memory.swappiness': '0' }, v2: { 'memory.high': '50M' } } } } };
    const one = buildConfig(c, paths, v1);
    expect(one.text).toContain('lxc.cgroup.memory.swappiness = 0');
    expect(one.text).not.toContain('memory.high');
    expect(one.warnings).toEqual(['driver.lxc.cgroup.v2.memory.high ignored: this host has cgroup v1']);
    const two = buildConfig(c, paths, v2);
    expect(two.text).toContain('lxc.cgroup2.memory.high = 50M');
    expect(two.warnings).toEqual(['driver.lxc.cgroup.v1.memory.swappiness ignored: this host has cgroup v2']);
  });

  it('a value cannot start another config line', () => {
    expect(() => buildConfig({ ...base, os: { ...base.os, env: { A: 'x\nlxc.apparmor.profile = unconfined' } } }, paths, v1)).toThrow(/line break/);
    expect(() => buildConfig({ ...base, driver: { lxc: { cgroup: { v1: { 'devices.allow': 'a\nlxc.x = y' } } } } }, paths, v1)).toThrow(/line break/);
    expect(() => buildConfig({ ...base, driver: { lxc: { cgroup: { v1: { 'bad key': '1' } } } } }, paths, v1)).toThrow(/not a cgroup key/);
    expect(() => buildConfig({ ...base, driver: { lxc: { haltSignal: 'SIGPWR\nlxc.x = y' } } }, paths, v1)).toThrow(/signal name/);
    expect(() => buildConfig({ ...base, os: { type: 'hvm' } }, paths, v1)).toThrow(/container/);
  });

  it('a veth on an existing bridge with a stable MAC (or the one given); "user" networking does not exist for containers', () => {
    const c: DomainConfig = { ...base, devices: { interfaces: [{ type: 'bridge', bridge: 'br0' }, { type: 'none' }, { type: 'bridge', bridge: 'br1', mac: '00:16:3E:AA:BB:CC' }] } };
    const k = keys(buildConfig(c, paths, v1).text).filter((l) => l.startsWith('lxc.net.'));
    expect(k).toEqual([
      'lxc.net.0.type = veth', 'lxc.net.0.link = br0', `lxc.net.0.veth.pair = ${vethName(uuid, 0)}`, `lxc.net.0.hwaddr = ${stableMac(uuid, 0)}`, 'lxc.net.0.name = eth0', 'lxc.net.0.flags = up',
      'lxc.net.2.type = veth', 'lxc.net.2.link = br1', `lxc.net.2.veth.pair = ${vethName(uuid, 2)}`, 'lxc.net.2.hwaddr = 00:16:3e:aa:bb:cc', 'lxc.net.2.name = eth2', 'lxc.net.2.flags = up',
    ]);
    expect(stableMac(uuid, 0)).toMatch(/^00:16:3e:[0-7][0-9a-f](:[0-9a-f]{2}){2}$/);
    expect(stableMac(uuid, 0)).not.toBe(stableMac(uuid, 2));
    expect(vethName(uuid, 0)).toBe('vc6b1c2a9e8cn0');
    expect(() => buildConfig({ ...base, devices: { interfaces: [{ type: 'user' }] } }, paths, v1)).toThrow(/not available for containers/);
  });
});

describe('start on a FAKE cgroup v2 node (cgroup v2 branch: this host cannot run it)', () => {
  it('detects v2 from /sys/fs/cgroup/cgroup.controllers and writes lxc.cgroup2 limits; the init goes as argv', () => {
    const written: Record<string, string> = {};
    const spawned: string[][] = [];
    const out = runOperation(driver, {
      kind: 'start', domain: 'web', config: JSON.stringify({ ...base, os: { ...base.os, init: ['/bin/sh', '-c', 'echo a b'] } }), node: { uri: 'lxc:///system', stateDir: '/state', runtimeDir: '/run/vk' },
    }, (e: { tag: string; val?: any }) => {
      switch (e.tag) {
        case 'file-stat': return { tag: 'stat', val: e.val === '/sys/fs/cgroup/cgroup.controllers' ? { kind: 'file', size: 0n, mode: 0o644, mtimeMs: 0n } : undefined };
        case 'file-remove': case 'make-dir': return { tag: 'none' };
        case 'file-write': written[e.val.path] = new TextDecoder().decode(e.val.data); return { tag: 'none' };
        case 'file-read': return { tag: 'data', val: new TextEncoder().encode('4242\n') };
        case 'process-info': return { tag: 'process', val: { state: 'S', cpuTimeNs: 0n, rssBytes: 0n, startTimeTicks: 77n, argv: [] } };
        case 'spawn':
          spawned.push([e.val.executable, ...e.val.args]);
          return e.val.mode.tag === 'run' ? { tag: 'exited', val: { code: 0, stdout: new Uint8Array(), stderr: new Uint8Array(), truncated: false } } : { tag: 'spawned', val: 99 };
        default: throw { code: 'no-support', message: `fake node has no ${e.tag}` };
      }
    });
    const config = written[`/run/vk/${uuid}/config`]!;
    expect(config).toContain(`lxc.cgroup2.memory.max = ${64 << 20}`);
    expect(config).toContain('lxc.cgroup2.memory.swap.max = 0');
    expect(config).not.toMatch(/^lxc\.cgroup\.memory/m);
    expect(spawned[0]).toEqual(['/usr/bin/lxc-start', '-n', uuid, '-P', '/run/vk', '-d', '-p', `/run/vk/${uuid}/monitor.pid`, '-o', `/run/vk/${uuid}/lxc.log`, '-l', 'WARN', '--', '/bin/sh', '-c', 'echo a b']);
    expect(spawned[1]).toEqual(['/usr/bin/setpriv', '--pdeathsig', 'SIGTERM', '/usr/bin/lxc-wait', '-n', uuid, '-P', '/run/vk', '-s', 'STOPPED']);
    expect(out.status).toEqual({ state: 'running', reason: 'booted' });
    expect(JSON.parse(out.runtime!)).toMatchObject({ monitor: 4242, monitorTicks: 77, cgroup: 2 });
    // The watcher is this manager's own, not part of the record every manager shares.
    expect(JSON.parse(out.runtime!).watcher).toBeUndefined();
  });
});

describe('open: what an interrupted operation left (on a FAKE runtime dir)', () => {
  it('stops containers of interrupted starts at once, unaccounted ones only once old, never active or busy ones', () => {
    const id = (n: number) => `00000000-0000-4000-8000-00000000000${n}`;
    const now = 1_800_000_000_000;
    const ages: Record<string, number> = { [id(1)]: 1_000, [id(2)]: 1_000, [id(3)]: 1_000, [id(4)]: 1_000, [id(5)]: 120_000 };
    const stopped: string[] = [];
    runOperation(driver, {
      kind: 'open', node: { uri: 'lxc:///system', stateDir: '/state', runtimeDir: '/run/vk' },
      args: JSON.stringify({ domains: [
        { name: 'interrupted', uuid: id(1), active: false, busy: false, interrupted: true },
        { name: 'starting-elsewhere', uuid: id(2), active: false, busy: true },
        { name: 'running', uuid: id(3), active: true, busy: false },
      ] }),
    }, (e: { tag: string; val?: any }) => {
      switch (e.tag) {
        // id(4): a start another manager began after the host read its records (fresh, no record of it then).
        case 'file-list': return { tag: 'entries', val: Object.keys(ages).map((name) => ({ name, kind: 'directory' })) };
        case 'file-stat': return { tag: 'stat', val: { kind: 'directory', size: 0n, mode: 0o700, mtimeMs: BigInt(now - ages[e.val.split('/').pop()]!) } };
        case 'clock': return { tag: 'clock', val: { wallMs: BigInt(now), monotonicNs: 0n } };
        case 'spawn':
          if (e.val.executable === '/usr/bin/lxc-stop') stopped.push(e.val.args[1]);
          return { tag: 'exited', val: { code: 0, stdout: new Uint8Array(), stderr: new Uint8Array(), truncated: false } };
        case 'file-remove': return { tag: 'none' };
        default: throw { code: 'no-support', message: `fake node has no ${e.tag}` };
      }
    });
    expect(stopped.sort()).toEqual([id(1), id(5)]);
  });
});
