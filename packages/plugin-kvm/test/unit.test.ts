// Unit tests of the driver's logic, in-process (no Wasm, no QEMU): the QEMU argv, and KVM
// detection against a FAKE sysfs/procfs tree built in a temp dir, since this machine's
// /dev/kvm is kvm_pvm and the KVM branch cannot run here for real.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOperation } from '@virtkit/driver-sdk/testing';
import { buildArgv, chooseAccel, domainPaths, stableMac, tapName, type DomainConfig } from '../src/argv.js';
import { driver } from '../src/driver.js';

const uuid = '6b1c2a9e-8c61-4a57-9a8e-3d7f1c2b9a10';
const base: DomainConfig = { name: 'web', uuid, memoryMiB: 256, vcpus: 2, os: { type: 'hvm' } };
const paths = domainPaths('/run/vk', uuid);
const opt = (argv: string[], flag: string) => argv.filter((_, i) => argv[i - 1] === flag);

describe('QEMU argv', () => {
  it('starts paused, sandboxed, without defaults, with QMP and a logged serial console', () => {
    const a = buildArgv(base, paths, 'tcg');
    for (const f of ['-S', '-no-shutdown', '-nodefaults', '-no-user-config']) expect(a).toContain(f);
    expect(opt(a, '-sandbox')).toEqual(['on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
    expect(opt(a, '-accel')).toEqual(['tcg']);
    expect(opt(a, '-m')).toEqual(['256M']);
    expect(opt(a, '-smp')).toEqual(['2']);
    expect(opt(a, '-chardev')).toEqual([
      `socket,id=qmp,path=/run/vk/${uuid}/qmp.sock,server=on,wait=off`,
      `socket,id=serial0,path=/run/vk/${uuid}/console.sock,server=on,wait=off,logfile=/run/vk/${uuid}/serial.log,logappend=on`,
    ]);
    expect(a).not.toContain('-cpu'); // the default model unless the config asks
    expect(opt(a, '-device')).toContain('pvpanic');
  });

  it('escapes commas so a path cannot add QEMU options', () => {
    const a = buildArgv({ ...base, name: 'a,b', devices: { disks: [{ source: '/img/x,file=/etc/shadow', format: 'raw', readonly: true, bootOrder: 1 }] } }, paths, 'kvm');
    expect(opt(a, '-name')).toEqual(['guest=a,,b,debug-threads=on']);
    expect(opt(a, '-blockdev')).toEqual([
      'driver=file,filename=/img/x,,file=/etc/shadow,node-name=file0,readonly=on',
      'driver=raw,file=file0,node-name=disk0,readonly=on',
    ]);
    expect(opt(a, '-device')).toContain('virtio-blk-pci,drive=disk0,id=vd0,bootindex=1');
  });

  it('boots a kernel directly, honours on_reboot=destroy and the CPU model asked for', () => {
    const a = buildArgv({ ...base, os: { type: 'hvm', kernel: '/k', initrd: '/i', cmdline: 'console=ttyS0' }, lifecycle: { onReboot: 'destroy' }, driver: { qemu: { cpu: 'max', runAs: 'qemu' } } }, paths, 'tcg');
    expect(opt(a, '-kernel')).toEqual(['/k']);
    expect(opt(a, '-initrd')).toEqual(['/i']);
    expect(opt(a, '-append')).toEqual(['console=ttyS0']);
    expect(a).toContain('-no-reboot');
    expect(opt(a, '-cpu')).toEqual(['max']);
    expect(opt(a, '-runas')).toEqual(['qemu']);
    expect(opt(a, '-sandbox')).toEqual(['on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny']);
  });

  it('gives NICs stable MACs and taps names Linux accepts', () => {
    const c: DomainConfig = { ...base, devices: { interfaces: [{ type: 'user' }, { type: 'bridge', bridge: 'br0', model: 'e1000' }, { type: 'user', mac: '52:54:00:aa:bb:cc' }] } };
    const a = buildArgv(c, paths, 'tcg');
    expect(opt(a, '-netdev')).toEqual(['user,id=net0', `tap,id=net1,ifname=${tapName(uuid, 1)},script=no,downscript=no`, 'user,id=net2']);
    expect(opt(a, '-device').filter((d) => d.includes('netdev='))).toEqual([
      `virtio-net-pci,netdev=net0,mac=${stableMac(uuid, 0)}`, `e1000,netdev=net1,mac=${stableMac(uuid, 1)}`, 'virtio-net-pci,netdev=net2,mac=52:54:00:aa:bb:cc',
    ]);
    expect(stableMac(uuid, 0)).toBe(stableMac(uuid, 0));
    expect(stableMac(uuid, 0)).not.toBe(stableMac(uuid, 1));
    expect(stableMac(uuid, 0)).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(tapName(uuid, 1).length).toBeLessThanOrEqual(15);
  });
});

describe('accelerator choice', () => {
  it('uses KVM only with a hardware KVM module, and lets the config force either', () => {
    expect(chooseAccel('auto', { devKvm: true, kvmIntel: true, kvmAmd: false }).accel).toBe('kvm');
    expect(chooseAccel('auto', { devKvm: true, kvmIntel: false, kvmAmd: true }).accel).toBe('kvm');
    expect(chooseAccel(undefined, { devKvm: true, kvmIntel: false, kvmAmd: false })).toEqual({ accel: 'tcg', why: '/dev/kvm exists but no kvm_intel or kvm_amd module (not a hardware KVM)' });
    expect(chooseAccel('auto', { devKvm: false, kvmIntel: true, kvmAmd: false }).accel).toBe('tcg');
    expect(chooseAccel('kvm', { devKvm: false, kvmIntel: false, kvmAmd: false }).accel).toBe('kvm');
    expect(chooseAccel('tcg', { devKvm: true, kvmIntel: true, kvmAmd: false }).accel).toBe('tcg');
  });

  /** A FAKE node: sysfs/procfs files in a temp dir; effects on absolute paths are answered from it. */
  function fakeNode(files: Record<string, string>) {
    const root = mkdtempSync(join(tmpdir(), 'vk-fake-sysfs-'));
    for (const [p, text] of Object.entries(files)) {
      mkdirSync(join(root, p, '..'), { recursive: true });
      if (p.endsWith('/')) mkdirSync(join(root, p), { recursive: true });
      else writeFileSync(join(root, p), text);
    }
    return (e: { tag: string; val?: any }) => {
      const at = (p: string) => join(root, p);
      switch (e.tag) {
        case 'file-stat': {
          try {
            const s = statSync(at(e.val));
            return { tag: 'stat', val: { kind: s.isDirectory() ? 'directory' : 'file', size: 0n, mode: 0, mtimeMs: 0n } };
          } catch {
            return { tag: 'stat', val: undefined };
          }
        }
        case 'file-read':
          return { tag: 'data', val: new Uint8Array(readFileSync(at(e.val.path))) };
        case 'file-list':
          return { tag: 'entries', val: readdirSync(at(e.val)).map((name) => ({ name, kind: 'directory' })) };
        case 'spawn': {
          // The FAKE emulator: answers --version and -machine help.
          const out = e.val.args[0] === '--version' ? 'QEMU emulator version 9.9.9\n' : 'Supported machines are:\npc   Standard PC\nq35  Standard PC (Q35)\n';
          return { tag: 'exited', val: { code: 0, stdout: new TextEncoder().encode(out), stderr: new Uint8Array(), truncated: false } };
        }
        default:
          throw { code: 'no-support', message: `fake node has no ${e.tag}` };
      }
    };
  }

  const proc = {
    '/proc/cpuinfo': 'processor\t: 0\nmodel name\t: Fake CPU\ncpu MHz\t\t: 2400.000\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nmodel name\t: Fake CPU\ncpu MHz\t\t: 2400.000\nphysical id\t: 0\ncore id\t\t: 1\n',
    '/proc/meminfo': 'MemTotal:        4096000 kB\n',
    '/sys/devices/system/node/node0/cpulist': '0-1\n',
    '/sys/devices/system/node/node0/meminfo': 'Node 0 MemTotal:       4096000 kB\n',
  };
  const facts = (out: { node?: { facts: Array<[string, string]> } }) => Object.fromEntries(out.node!.facts);

  it('on a fake node with kvm_intel, reports KVM', () => {
    const out = runOperation(driver, { kind: 'node-info' }, fakeNode({ ...proc, '/dev/kvm': '', '/sys/module/kvm_intel/': '' }));
    expect(facts(out)).toMatchObject({ accelerator: 'kvm', 'kvm-usable': 'true', 'machine-types': 'pc q35' });
    expect(out.node).toMatchObject({ cpuModel: 'Fake CPU', cpus: 2, mhz: 2400, sockets: 1, coresPerSocket: 2, threadsPerCore: 1, hypervisorVersion: '9.9.9' });
  });

  it('on a fake node with only /dev/kvm (like kvm_pvm), reports TCG and why', () => {
    const out = runOperation(driver, { kind: 'node-info' }, fakeNode({ ...proc, '/dev/kvm': '', '/sys/module/kvm/': '' }));
    expect(facts(out)).toMatchObject({ accelerator: 'tcg', 'kvm-usable': 'false', 'accelerator-reason': '/dev/kvm exists but no kvm_intel or kvm_amd module (not a hardware KVM)' });
  });
});
