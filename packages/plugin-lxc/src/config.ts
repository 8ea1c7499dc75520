// The LXC config file of a container: a pure function of its domain config and of what the
// host's cgroups are, so it is unit-tested without LXC (the cgroup v2 branch cannot run on
// this machine). Every value is checked before it is written: a value cannot start a new
// line, so a config field cannot smuggle in another LXC key.

export interface LxcSection {
  /** Signal lxc-stop sends the init for a graceful shutdown (LXC's default SIGPWR). */
  haltSignal?: string;
  /** Signal for a reboot request (LXC's default SIGINT). */
  rebootSignal?: string;
  /** Relative CPU weight (cgroup v1 cpu.shares, 2..262144; v2 cpu.weight is derived). */
  cpuShares?: number;
  /** CPUs the container may run on, e.g. "0-1,3". */
  cpuset?: string;
  /** Most tasks (processes and threads) the container may have. */
  pidsMax?: number;
  /** Raw cgroup settings per hierarchy version; only the host's version applies. */
  cgroup?: { v1?: Record<string, string>; v2?: Record<string, string> };
}

export interface DomainConfig {
  name: string;
  uuid: string;
  memoryMiB: number;
  maxMemoryMiB?: number;
  vcpus: number;
  os: { type: string; rootfs?: string; init?: string[]; hostname?: string; env?: Record<string, string> };
  devices?: { interfaces?: Array<{ type: 'user' | 'bridge' | 'none'; bridge?: string; mac?: string }> };
  driver?: { lxc?: LxcSection };
}

/** What the host's cgroups are: which hierarchy, and whether swap is accounted (memsw). */
export interface CgroupHost {
  version: 1 | 2;
  memsw: boolean;
}

/** Files of a container, all in its own dir (by uuid: a unix socket path stays < 108 bytes). */
export interface ContainerPaths {
  /** LXC's lxcpath (-P): the driver's runtime dir. */
  lxcpath: string;
  /** LXC's container name (-n): the uuid. */
  name: string;
  dir: string;
  config: string;
  log: string;
  pidfile: string;
  consoleLog: string;
}

export function containerPaths(runtimeDir: string, uuid: string): ContainerPaths {
  const dir = `${runtimeDir}/${uuid}`;
  return { lxcpath: runtimeDir, name: uuid, dir, config: `${dir}/config`, log: `${dir}/lxc.log`, pidfile: `${dir}/monitor.pid`, consoleLog: `${dir}/console.log` };
}

export class ConfigError extends Error {}

const SIGNAL = /^SIG[A-Z0-9+]{2,12}$/;
const CGROUP_KEY = /^[a-z][a-z0-9_]*\.[a-z0-9_.]+$/;

/** A value on one config line: no line break, no NUL. */
function line(what: string, v: string): string {
  if (/[\n\r\0]/.test(v)) throw new ConfigError(`${what} must not contain a line break or NUL`);
  return v;
}

/** A stable MAC in LXC's 00:16:3e range, from the uuid and NIC index. */
export function stableMac(uuid: string, index: number): string {
  let h = 0x811c9dc5;
  for (const ch of `${uuid}/${index}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return ['00', '16', '3e', (h >>> 16) & 0x7f, (h >>> 8) & 0xff, h & 0xff].map((b) => (typeof b === 'string' ? b : b.toString(16).padStart(2, '0'))).join(':');
}

/** The host end of a container's veth (Linux names are at most 15 bytes). */
export function vethName(uuid: string, index: number): string {
  return `vc${uuid.replace(/-/g, '').slice(0, 10)}n${index}`.slice(0, 15);
}

/** cgroup v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), as the kernel docs map them. */
export const sharesToWeight = (shares: number) => 1 + Math.floor(((shares - 2) * 9999) / 262142);

/** The resource limits as cgroup keys of the host's hierarchy, plus warnings for what does not apply. */
export function cgroupLimits(c: DomainConfig, host: CgroupHost): { keys: Array<[string, string]>; warnings: string[] } {
  const s = c.driver?.lxc ?? {};
  const bytes = String(c.memoryMiB * 1024 * 1024);
  const keys: Array<[string, string]> = [];
  const warnings: string[] = [];
  if (host.version === 1) {
    keys.push(['memory.limit_in_bytes', bytes]);
    // Where swap is accounted, the limit covers memory plus swap: no escape into swap.
    if (host.memsw) keys.push(['memory.memsw.limit_in_bytes', bytes]);
    if (s.cpuShares !== undefined) keys.push(['cpu.shares', String(s.cpuShares)]);
    if (s.cpuset !== undefined) keys.push(['cpuset.cpus', s.cpuset]);
    if (s.pidsMax !== undefined) keys.push(['pids.max', String(s.pidsMax)]);
  } else {
    keys.push(['memory.max', bytes], ['memory.swap.max', '0']);
    if (s.cpuShares !== undefined) keys.push(['cpu.weight', String(sharesToWeight(s.cpuShares))]);
    if (s.cpuset !== undefined) keys.push(['cpuset.cpus', s.cpuset]);
    if (s.pidsMax !== undefined) keys.push(['pids.max', String(s.pidsMax)]);
  }
  const mine = host.version === 1 ? s.cgroup?.v1 : s.cgroup?.v2;
  const other = host.version === 1 ? s.cgroup?.v2 : s.cgroup?.v1;
  for (const [k, v] of Object.entries(mine ?? {})) {
    if (!CGROUP_KEY.test(k)) throw new ConfigError(`driver.lxc.cgroup.v${host.version}: ${JSON.stringify(k)} is not a cgroup key`);
    keys.push([k, line(`driver.lxc.cgroup.v${host.version}.${k}`, v)]);
  }
  for (const k of Object.keys(other ?? {})) warnings.push(`driver.lxc.cgroup.v${host.version === 1 ? 2 : 1}.${k} ignored: this host has cgroup v${host.version}`);
  return { keys, warnings };
}

/** The whole LXC config file of a container, and the warnings met on the way. */
export function buildConfig(c: DomainConfig, p: ContainerPaths, host: CgroupHost): { text: string; warnings: string[] } {
  if (c.os.type !== 'container' || !c.os.rootfs) throw new ConfigError('os.type must be "container", with os.rootfs');
  const s = c.driver?.lxc ?? {};
  for (const [k, v] of [['haltSignal', s.haltSignal], ['rebootSignal', s.rebootSignal]] as const) {
    if (v !== undefined && !SIGNAL.test(v)) throw new ConfigError(`driver.lxc.${k}: ${JSON.stringify(v)} is not a signal name like SIGPWR`);
  }
  const out: string[] = [
    '# Written by virtkit plugin-lxc at each start; edits are lost.',
    `lxc.uts.name = ${line('os.hostname', c.os.hostname ?? c.name)}`,
    `lxc.rootfs.path = dir:${line('os.rootfs', c.os.rootfs)}`,
    // The init command is not here: lxc-start gets it as argv (lxc.init.cmd splits on blanks).
    // No AppArmor here (and no LSM the driver could rely on): say so, or LXC 5 refuses to start.
    'lxc.apparmor.profile = unconfined',
    // A root manager's containers stay inside the manager's own cgroup.
    'lxc.cgroup.relative = 1',
    'lxc.mount.auto = proc:mixed sys:ro cgroup:mixed',
    'lxc.autodev = 1',
    'lxc.tty.max = 0',
    'lxc.pty.max = 16',
    'lxc.cap.drop = mac_admin mac_override sys_time sys_module sys_rawio',
    `lxc.console.logfile = ${p.consoleLog}`,
    `lxc.signal.halt = ${s.haltSignal ?? 'SIGPWR'}`,
    `lxc.signal.reboot = ${s.rebootSignal ?? 'SIGINT'}`,
  ];
  for (const [k, v] of Object.entries(c.os.env ?? {})) out.push(`lxc.environment = ${k}=${line(`os.env.${k}`, v)}`);
  const nics = (c.devices?.interfaces ?? []).filter((n) => n.type !== 'none');
  if (nics.some((n) => n.type === 'user')) throw new ConfigError('devices.interfaces: type "user" is not available for containers (use "bridge" or "none")');
  if (nics.length === 0) {
    // Its own network namespace with only loopback.
    out.push('lxc.net.0.type = empty');
  } else {
    (c.devices?.interfaces ?? []).forEach((n, i) => {
      if (n.type === 'none') return;
      out.push(
        `lxc.net.${i}.type = veth`,
        `lxc.net.${i}.link = ${line('bridge', n.bridge!)}`,
        `lxc.net.${i}.veth.pair = ${vethName(c.uuid, i)}`,
        `lxc.net.${i}.hwaddr = ${(n.mac ?? stableMac(c.uuid, i)).toLowerCase()}`,
        `lxc.net.${i}.name = eth${i}`,
        `lxc.net.${i}.flags = up`,
      );
    });
  }
  const { keys, warnings } = cgroupLimits(c, host);
  const prefix = host.version === 1 ? 'lxc.cgroup' : 'lxc.cgroup2';
  // Devices: nothing but the usual character devices (as LXC's common.conf allows). The
  // container is privileged (no id map yet): without this its root could mknod and open the
  // host's disks or /dev/kmsg. Device nodes may be made (m), not opened, except these.
  for (const rule of DEVICES) out.push(`${prefix}.devices.${rule}`);
  for (const [k, v] of keys) out.push(`${prefix}.${k} = ${v}`);
  return { text: `${out.join('\n')}\n`, warnings };
}

const DEVICES = [
  'deny = a',
  'allow = c *:* m',
  'allow = b *:* m',
  'allow = c 1:3 rwm', // null
  'allow = c 1:5 rwm', // zero
  'allow = c 1:7 rwm', // full
  'allow = c 1:8 rwm', // random
  'allow = c 1:9 rwm', // urandom
  'allow = c 5:0 rwm', // tty
  'allow = c 5:1 rwm', // console
  'allow = c 5:2 rwm', // ptmx
  'allow = c 136:* rwm', // pts
];
