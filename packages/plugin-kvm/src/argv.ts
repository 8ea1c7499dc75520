// The QEMU command line for a domain: a pure function of its config, so it is unit-tested
// without QEMU. argv array only; values QEMU parses as option lists have their commas
// doubled, QEMU's own escape, so a path cannot smuggle in another option.

export interface QemuSection {
  /** "auto" (default) picks KVM when it is really usable, else TCG. */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** CPU model; default: QEMU's default model (with KVM, "host" and "max" crash on some hosts). */
  cpu?: string;
  machine?: string;
  emulator?: string;
  /** Run QEMU as this user (QEMU's -runas), so the grant to run QEMU is not root file access. */
  runAs?: string;
  /** How often a graceful shutdown presses the power button again (ms). */
  powerdownRetryMs?: number;
}

export interface DomainConfig {
  name: string;
  uuid: string;
  memoryMiB: number;
  vcpus: number;
  lifecycle?: { onPoweroff?: string; onReboot?: string; onCrash?: string };
  os: { type: string; machine?: string; kernel?: string; initrd?: string; cmdline?: string; bootOrder?: string[] };
  devices?: {
    disks?: Array<{ source: string; format?: 'raw' | 'qcow2'; bus?: string; readonly?: boolean; bootOrder?: number }>;
    interfaces?: Array<{ type: 'user' | 'bridge' | 'none'; bridge?: string; mac?: string; model?: string }>;
    serials?: Array<{ logFile?: string }>;
  };
  driver?: { qemu?: QemuSection };
}

/** Files of a running domain, all in its own runtime dir. */
export interface DomainPaths {
  dir: string;
  qmp: string;
  console: string;
  serialLog: string;
  log: string;
  pidfile: string;
}

export function domainPaths(runtimeDir: string, uuid: string): DomainPaths {
  // By uuid, not name: a unix socket path must stay under 108 bytes.
  const dir = `${runtimeDir}/${uuid}`;
  return { dir, qmp: `${dir}/qmp.sock`, console: `${dir}/console.sock`, serialLog: `${dir}/serial.log`, log: `${dir}/qemu.log`, pidfile: `${dir}/qemu.pid` };
}

/** QEMU's escape inside a comma-separated option value. */
export const esc = (v: string) => v.replace(/,/g, ',,');

/** A stable locally administered MAC in QEMU's 52:54:00 range, from the uuid and NIC index. */
export function stableMac(uuid: string, index: number): string {
  let h = 0x811c9dc5;
  for (const ch of `${uuid}/${index}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  const b = [(h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff];
  return ['52', '54', '00', ...b.map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

export function buildArgv(c: DomainConfig, p: DomainPaths, accel: 'kvm' | 'tcg'): string[] {
  const q = c.driver?.qemu ?? {};
  const a: string[] = [
    '-name', `guest=${esc(c.name)},debug-threads=on`,
    '-uuid', c.uuid,
    '-nodefaults', '-no-user-config',
    // Paused until the driver has finished set-up; the driver decides what a guest
    // power-off means (on_poweroff), so QEMU stops instead of exiting.
    '-S', '-no-shutdown',
    '-machine', esc(q.machine ?? c.os.machine ?? 'pc'),
    '-accel', accel,
    '-m', `${c.memoryMiB}M`,
    '-smp', String(c.vcpus),
    '-display', 'none',
    // QEMU 7.2 drops to the -runas user after installing the filter, so set*id must stay
    // allowed then ("deny" and "children" kill it with SIGSYS). Harmless: once dropped it has
    // no capability to elevate with, and spawn=deny keeps it from exec'ing setuid programs.
    '-sandbox', `on,obsolete=deny,elevateprivileges=${c.driver?.qemu?.runAs ? 'allow' : 'deny'},spawn=deny,resourcecontrol=deny`,
    '-pidfile', p.pidfile,
    '-chardev', `socket,id=qmp,path=${esc(p.qmp)},server=on,wait=off`,
    '-mon', 'chardev=qmp,mode=control',
    '-chardev', `socket,id=serial0,path=${esc(p.console)},server=on,wait=off,logfile=${esc(c.devices?.serials?.[0]?.logFile ?? p.serialLog)},logappend=on`,
    '-serial', 'chardev:serial0',
    // A guest panic reaches QEMU (GUEST_PANICKED) through pvpanic: on_crash applies.
    '-device', 'pvpanic',
  ];
  if (q.cpu) a.push('-cpu', esc(q.cpu));
  if (q.runAs) a.push('-runas', q.runAs);
  if (c.os.kernel) {
    a.push('-kernel', c.os.kernel);
    if (c.os.initrd) a.push('-initrd', c.os.initrd);
    if (c.os.cmdline) a.push('-append', c.os.cmdline);
  }
  if (c.lifecycle?.onReboot === 'destroy') a.push('-no-reboot');
  (c.devices?.disks ?? []).forEach((d, i) => {
    const ro = d.readonly ? ',readonly=on' : '';
    a.push('-blockdev', `driver=file,filename=${esc(d.source)},node-name=file${i}${ro}`);
    a.push('-blockdev', `driver=${d.format ?? 'raw'},file=file${i},node-name=disk${i}${ro}`);
    const boot = d.bootOrder !== undefined ? `,bootindex=${d.bootOrder}` : '';
    a.push('-device', `virtio-blk-pci,drive=disk${i},id=vd${i}${boot}`);
  });
  (c.devices?.interfaces ?? []).forEach((n, i) => {
    if (n.type === 'none') return;
    const model = n.model === 'e1000' ? 'e1000' : n.model === 'rtl8139' ? 'rtl8139' : 'virtio-net-pci';
    const netdev = n.type === 'user' ? `user,id=net${i}` : `tap,id=net${i},ifname=${tapName(c.uuid, i)},script=no,downscript=no`;
    a.push('-netdev', netdev, '-device', `${model},netdev=net${i},mac=${n.mac ?? stableMac(c.uuid, i)}`);
  });
  return a;
}

/** Linux interface names are at most 15 bytes. */
export function tapName(uuid: string, index: number): string {
  return `vk${uuid.replace(/-/g, '').slice(0, 10)}n${index}`.slice(0, 15);
}

/**
 * KVM is really usable only with a hardware KVM module: /dev/kvm alone may be kvm_pvm,
 * which runs no standard guest. The config may force either.
 */
export function chooseAccel(requested: QemuSection['accel'], facts: { devKvm: boolean; kvmIntel: boolean; kvmAmd: boolean }): { accel: 'kvm' | 'tcg'; why: string } {
  const usable = facts.devKvm && (facts.kvmIntel || facts.kvmAmd);
  if (requested === 'kvm') return { accel: 'kvm', why: 'forced by config' };
  if (requested === 'tcg') return { accel: 'tcg', why: 'forced by config' };
  if (usable) return { accel: 'kvm', why: `/dev/kvm with ${facts.kvmIntel ? 'kvm_intel' : 'kvm_amd'}` };
  return { accel: 'tcg', why: facts.devKvm ? '/dev/kvm exists but no kvm_intel or kvm_amd module (not a hardware KVM)' : 'no /dev/kvm' };
}
