#!/usr/bin/env node
// pnpm bench:kvm: prices virtkit's QEMU driver (qemu:///system) against bare QEMU, in one run.
//   (1) start: conn.start() until it resolves (vCPUs running), against spawning the same
//       QEMU argv by hand and doing the QMP handshake and `cont` ourselves; diskless and
//       with a qcow2 disk;
//   (2) boot to the guest's ready marker on its serial log, same two ways;
//   (3) destroy: conn.destroy() against SIGTERM-to-exit of a bare QEMU;
//   (4) 20 tiny VMs started at once: total time and the manager's RSS;
//   (5) 1000 defined domains: listDomains({ all: true }) and `virtkit list --all`.
// Prints a table and writes bench/dist/kvm-results.json. A missed target is reported, not
// fatal; only a measurement that could not run exits non-zero. Needs `pnpm build` and the
// test guest (`bash scripts/build-test-guest.sh`) first. Every QEMU it starts is stopped
// before it exits, also on an error or Ctrl-C.
import { floorProcess } from './floor-ipc.mjs';
import { formatTable, median, quantile, fmt } from './table.mjs';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open as openFile, readdir, readFile, rename } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bench = join(root, 'bench');
const coreDist = join(root, 'packages/core/dist');
const guest = join(root, '.cache/test-guest');
const QEMU = '/usr/bin/qemu-system-x86_64';
const log = (m) => process.stderr.write(`bench:kvm: ${m}\n`);

const missing = [
  [join(coreDist, 'index.js'), 'build first: pnpm build'],
  [join(root, 'packages/plugin-kvm/dist/plugin-kvm.wasm'), 'build first: pnpm build'],
  [join(guest, 'manifest.json'), 'build the test guest first: bash scripts/build-test-guest.sh'],
  [QEMU, `${QEMU} is not installed`],
].find(([f]) => !existsSync(f));
if (missing) {
  log(missing[1]);
  process.exit(1);
}

const { connect, FileStore, Host } = await import(pathToFileURL(join(coreDist, 'index.js')).href);
const manifest = JSON.parse(readFileSync(join(guest, 'manifest.json'), 'utf8'));
const KERNEL = join(guest, manifest.kernel);
const INITRD = join(guest, manifest.initrd);
const DISK = join(guest, manifest.disk);
const CMDLINE = manifest.cmdline;
const READY = manifest.markers?.ready ?? 'VIRTKIT-GUEST-READY';

const START_ROUNDS = 7; // (1) and (3)
const BOOT_ROUNDS = 3; // (2)
const SETTLE_MS = 200; // a started guest runs this long before it is destroyed
const CONCURRENT = 20; // (4)
// (4)'s VMs are as small as this guest boots in: at 64 MiB its kernel never starts and the
// machine resets every ~35 ms (2 QMP RESET events each time), which turns the measurement
// into a stress test of event handling; 72 MiB is the least that boots.
const CONCURRENT_MIB = 80;
const DEFINED = 1000; // (5)
const DEFINE_IN_FLIGHT = 8;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Every QEMU this run starts, so that none outlives it.

const temps = [];
/** Short temp roots: a unix socket path must stay under 108 bytes. */
const tempRoot = () => {
  const d = mkdtempSync('/tmp/vk-');
  temps.push(d);
  return d;
};
const ourPids = new Set(); // pids of the QEMUs virtkit started (from their pidfiles)

/** Runs, not a zombie. */
function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A QEMU whose command line names one of this run's temp roots: one we started. */
function oursByCmdline(pid) {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return argv.startsWith(QEMU) && temps.some((t) => argv.includes(`${t}/`));
  } catch {
    return false;
  }
}

/** Last resort, synchronous (also from a signal handler): SIGKILL what is left, by pid. */
function killLeftovers() {
  let n = 0;
  // Bare QEMUs die with their floor process (bench/qemu-floor.mjs); the scan below finds them too.
  const pids = new Set(ourPids);
  // A QEMU virtkit spawned but whose pid we never read (a start that failed half-way).
  for (const e of readdirSync('/proc')) if (/^\d+$/.test(e) && oursByCmdline(Number(e))) pids.add(Number(e));
  for (const pid of pids) {
    if (alive(pid) && oursByCmdline(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
        n++;
      } catch {}
    }
  }
  return n;
}

function removeTemps() {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: stopping every QEMU this run started`);
    killLeftovers();
    removeTemps();
    process.exit(130);
  });
}
process.on('exit', () => killLeftovers());

// ---------------------------------------------------------------------------------------
// Statistics and formatting (as bench/run.mjs)



const rows = [];
const notes = [];
let errors = 0;

/**
 * One table row, lower is better. The ratio is virtkit / floor ("how many times the floor's
 * cost virtkit pays"). `maxRatio` is a target on the ratio (met when ratio <= maxRatio).
 */
function row({ id, metric, unit, virtkit, floor, floorLabel, maxRatio }) {
  const ratio = floor ? virtkit / floor : undefined;
  const met = maxRatio === undefined ? undefined : ratio <= maxRatio;
  rows.push({ id, metric, unit, virtkit, floor, floorLabel, ratio, target: maxRatio, targetText: maxRatio === undefined ? undefined : `<= ${maxRatio}x`, met });
}

function errorRow(id, metric, e) {
  errors++;
  rows.push({ id, metric, error: String(e?.stack ?? e) });
  log(`${metric}: FAILED: ${e?.stack ?? e}`);
}

const table = () => formatTable(rows, fmt, 2);

const ms1 = (v) => `${v.toFixed(1)} ms`;

// ---------------------------------------------------------------------------------------
// virtkit's side: a host and a qemu:///system connection on temp roots.

class Lab {
  constructor() {
    this.root = tempRoot();
    this.stateRoot = join(this.root, 's');
    this.runtimeRoot = join(this.root, 'r');
    this.logs = join(this.root, 'log');
    this.disks = join(this.root, 'disk');
    mkdirSync(this.logs);
    mkdirSync(this.disks);
    this.uuids = new Map();
  }

  async open() {
    this.host = await new Host({
      stateRoot: this.stateRoot,
      runtimeRoot: this.runtimeRoot,
      cacheDir: join(root, '.cache/glue'),
      pluginSearch: [join(root, 'packages/cli')],
    }).init();
    this.conn = await connect('qemu:///system', { host: this.host });
    // Instrumentation, not a change to virtkit: when each driver operation starts and ends
    // on the main thread, so a lifecycle call splits into "before the driver" (store reads,
    // the job), "the driver" (the worker, its effects) and "after" (store and event writes).
    this.runs = new Map();
    this.opCount = {};
    const ph = this.conn.plugin?.host;
    if (ph && typeof ph.run === 'function') {
      const run = ph.run.bind(ph);
      ph.run = async (req, opts) => {
        const start = performance.now();
        this.opCount[req.kind] = (this.opCount[req.kind] ?? 0) + 1;
        try {
          return await run(req, opts);
        } finally {
          this.runs.set(`${req.kind}/${req.domain}`, { start, end: performance.now() });
        }
      };
    }
    return this;
  }

  /** The driver's part of the last `kind` on `name`, relative to t0. */
  span(kind, name, t0) {
    const r = this.runs.get(`${kind}/${name}`);
    this.runs.delete(`${kind}/${name}`);
    return r && r.start >= t0 ? { start: r.start - t0, end: r.end - t0 } : undefined;
  }

  /** The plugin's runtime dir: one subdirectory per running domain, by uuid. */
  get kvmRuntime() {
    return join(this.runtimeRoot, 'virtkit-plugin-kvm', 'system');
  }

  serialLog(name) {
    return join(this.logs, `${name}.log`);
  }

  config(name, { disk = false, memoryMiB = 128 } = {}) {
    const disks = [];
    if (disk) {
      const copy = join(this.disks, `${name}.qcow2`);
      copyFileSync(DISK, copy);
      disks.push({ source: copy, format: 'qcow2' });
    }
    return {
      name, memoryMiB, vcpus: 1,
      os: { type: 'hvm', kernel: KERNEL, initrd: INITRD, cmdline: CMDLINE },
      devices: { ...(disk ? { disks } : {}), serials: [{ logFile: this.serialLog(name) }] },
    };
  }

  async define(name, opts) {
    const d = await this.conn.define(this.config(name, opts));
    this.uuids.set(name, d.uuid);
    return d;
  }

  domainDir(name) {
    return join(this.kvmRuntime, this.uuids.get(name));
  }

  /** The pid of the domain's QEMU, from the pidfile QEMU writes (-pidfile). */
  pid(name) {
    const pid = Number(readFileSync(join(this.domainDir(name), 'qemu.pid'), 'utf8').trim());
    if (!(pid > 1)) throw new Error(`no pid in ${this.domainDir(name)}/qemu.pid`);
    return pid;
  }

  /** conn.start until it resolves; the progress marks split it into phases. */
  async start(name) {
    const marks = {};
    const t0 = performance.now();
    const status = await this.conn.start(name, { onProgress: (p) => (marks[p] ??= performance.now() - t0) });
    const ms = performance.now() - t0;
    const pid = this.pid(name);
    ourPids.add(pid);
    if (status.state !== 'running') throw new Error(`start ${name}: state ${status.state}`);
    const d = this.span('start', name, t0);
    return {
      ms, pid, t0,
      // Call -> the driver starts: reading the domain, the job.
      beforeDriverMs: d?.start,
      // -> "starting QEMU" (just before spawn): the driver's set-up effects (stat, mkdir, remove).
      setupMs: d && marks[10] - d.start,
      // Spawn -> "resuming vCPUs": QEMU start-up, the QMP socket wait loop, greeting, capabilities.
      spawnToQmpMs: marks[80] - marks[10],
      // "resuming vCPUs" -> the driver's outcome is back: QMP cont, draining events.
      contMs: d && d.end - marks[80],
      // -> resolved: the runtime record and the event written (fsynced) to the state store.
      recordsMs: d && ms - d.end,
    };
  }

  /** conn.destroy until it resolves; checks the process is gone and the state shut off. */
  async destroy(name, pid) {
    const t0 = performance.now();
    const status = await this.conn.destroy(name);
    const ms = performance.now() - t0;
    if (status.state !== 'shut-off') throw new Error(`destroy ${name}: state ${status.state}`);
    if (alive(pid)) throw new Error(`destroy ${name}: QEMU ${pid} still runs after destroy resolved`);
    ourPids.delete(pid);
    const d = this.span('destroy', name, t0);
    // before the driver | the driver (close QMP, SIGTERM, wait for exit, remove the runtime dir) | records
    return { ms, beforeDriverMs: d?.start, driverMs: d && d.end - d.start, recordsMs: d && ms - d.end };
  }

  /** The argv virtkit ran QEMU with, from /proc, as a bare-QEMU spec on floor paths. */
  floorSpec(name, pid) {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv.at(-1) === '') argv.pop();
    const dir = join(this.root, `f-${name}`);
    const ourDir = this.domainDir(name);
    const ourSerial = this.serialLog(name);
    const serialLog = join(this.logs, `${name}.floor.log`);
    const rewritten = argv.map((a) => a.split(ourDir).join(dir).split(ourSerial).join(serialLog));
    const left = rewritten.find((a) => a.includes(ourDir) || a.includes(ourSerial));
    if (left) throw new Error(`could not move ${left} to the floor's paths`);
    if (!rewritten.includes(`${dir}/qemu.pid`)) throw new Error(`no -pidfile ${ourDir}/qemu.pid in virtkit's argv: ${argv.join(' ')}`);
    return { argv: rewritten, dir, qmp: join(dir, 'qmp.sock'), serialLog, ourArgv: argv };
  }

  async close() {
    for (const d of (await this.conn?.listDomains().catch(() => [])) ?? []) {
      await this.conn.destroy(d.name).catch((e) => log(`cleanup: destroy ${d.name}: ${e.message}`));
    }
    await this.conn?.close();
    await this.host?.close();
  }
}

// ---------------------------------------------------------------------------------------
// The floor: bare QEMU, spawned and driven over QMP by hand, from a small process of its own
// (bench/qemu-floor.mjs: a spawn from this process, which holds virtkit's host, costs ~10 ms
// more than from a small one).

const askFloor = floorProcess(join(bench, 'qemu-floor.mjs'));

/**
 * The floor of a start (bench/qemu-floor.mjs): make the runtime dir and log file, spawn QEMU
 * with virtkit's argv (detached, empty environment, stdout/stderr to a log file), connect to
 * its QMP socket (retrying every 1 ms), read the greeting, qmp_capabilities, cont, its return.
 * t0 is on this process's clock; isAlive() says whether that QEMU still runs.
 */
async function bareStart(spec) {
  const r = await askFloor({ t: 'start', spec: { dir: spec.dir, argv: spec.argv, qmp: spec.qmp } });
  return { key: r.key, ms: r.ms, t0: r.t0Abs - performance.timeOrigin, pid: r.pid, isAlive: () => alive(r.pid), connectedMs: r.connectedMs, greetedMs: r.greetedMs, negotiatedMs: r.negotiatedMs };
}

/** The floor of a destroy: from kill(SIGTERM) to the child's 'exit' event, in the floor process. */
async function bareDestroy(b) {
  return (await askFloor({ t: 'destroy', key: b.key })).ms;
}

/** ms from t0 until `marker` is in `file` (polled every 10 ms, the same for both sides). */
async function waitMarker(file, marker, t0, isAlive, timeoutMs = 120_000) {
  for (;;) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {}
    if (text.includes(marker)) return { ms: performance.now() - t0, text };
    if (!isAlive()) throw new Error(`QEMU exited before ${marker} appeared in ${file}: ${text.slice(-300)}`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`${marker} did not appear in ${file} within ${timeoutMs / 1000} s`);
    await sleep(10);
  }
}

const rm = (f) => rmSync(f, { force: true });

// ---------------------------------------------------------------------------------------
// (1) start and (3) destroy, diskless and with the qcow2 disk

async function startAndDestroy(lab) {
  const kinds = [
    { key: 'diskless', name: 'sd', disk: false },
    { key: 'disk', name: 'sq', disk: true },
  ];
  const out = {};
  for (const k of kinds) {
    await lab.define(k.name, { disk: k.disk });
    // Warm-up, not counted: the first start of a QEMU pays for the page cache. It also
    // gives the argv the floor runs.
    const s = await lab.start(k.name);
    k.spec = lab.floorSpec(k.name, s.pid);
    await sleep(SETTLE_MS);
    await lab.destroy(k.name, s.pid);
    await bareDestroy(await bareStart(k.spec));
    out[k.key] = { argv: k.spec.ourArgv, floorArgv: k.spec.argv, ours: [], floor: [], oursDestroy: [], floorDestroy: [], info: [] };
  }
  for (let i = 0; i < START_ROUNDS; i++) {
    for (const k of kinds) {
      const o = out[k.key];
      const s = await lab.start(k.name);
      o.ours.push(s);
      // For scale: one driver operation with one effect (info: a process-info effect).
      const ti = performance.now();
      await lab.conn.info(k.name);
      o.info.push(performance.now() - ti);
      await sleep(SETTLE_MS - (performance.now() - ti));
      o.oursDestroy.push(await lab.destroy(k.name, s.pid));
      const b = await bareStart(k.spec);
      o.floor.push({ ms: b.ms, connectedMs: b.connectedMs, greetedMs: b.greetedMs, negotiatedMs: b.negotiatedMs });
      await sleep(SETTLE_MS);
      o.floorDestroy.push(await bareDestroy(b));
    }
    log(`(1) round ${i + 1}/${START_ROUNDS}: start ${kinds.map((k) => `${k.key} ${out[k.key].ours.at(-1).ms.toFixed(0)}/${out[k.key].floor.at(-1).ms.toFixed(0)} ms`).join(', ')} (virtkit/floor)`);
  }
  for (const k of kinds) {
    const o = out[k.key];
    const m = (xs, f = (x) => x) => median(xs.map(f));
    o.summary = {
      startMs: m(o.ours, (x) => x.ms), floorStartMs: m(o.floor, (x) => x.ms),
      beforeDriverMs: m(o.ours, (x) => x.beforeDriverMs), setupMs: m(o.ours, (x) => x.setupMs), spawnToQmpMs: m(o.ours, (x) => x.spawnToQmpMs),
      contMs: m(o.ours, (x) => x.contMs), recordsMs: m(o.ours, (x) => x.recordsMs),
      floorConnectedMs: m(o.floor, (x) => x.connectedMs), floorGreetedMs: m(o.floor, (x) => x.greetedMs), floorNegotiatedMs: m(o.floor, (x) => x.negotiatedMs),
      floorContMs: m(o.floor, (x) => x.ms - x.negotiatedMs),
      destroyMs: m(o.oursDestroy, (x) => x.ms), floorDestroyMs: m(o.floorDestroy),
      infoMs: m(o.info),
      destroyBeforeDriverMs: m(o.oursDestroy, (x) => x.beforeDriverMs), destroyDriverMs: m(o.oursDestroy, (x) => x.driverMs), destroyRecordsMs: m(o.oursDestroy, (x) => x.recordsMs),
    };
    const label = k.disk ? 'with qcow2 disk' : 'diskless';
    row({ id: `start.${k.key}`, metric: `start, ${label} (ms, median of ${START_ROUNDS})`, unit: 'ms', virtkit: o.summary.startMs, floor: o.summary.floorStartMs, floorLabel: 'bare QEMU, same argv: spawn, QMP greeting, qmp_capabilities, cont', maxRatio: 1.3 });
  }
  for (const k of kinds) {
    const o = out[k.key];
    const label = k.disk ? 'with qcow2 disk' : 'diskless';
    row({ id: `destroy.${k.key}`, metric: `destroy, ${label}, ${SETTLE_MS} ms after start (ms, median of ${START_ROUNDS})`, unit: 'ms', virtkit: o.summary.destroyMs, floor: o.summary.floorDestroyMs, floorLabel: 'bare QEMU: SIGTERM to exit event', maxRatio: 2 });
  }
  for (const k of kinds) {
    const s = out[k.key].summary;
    notes.push(
      `start ${k.key} (medians of each phase): virtkit ${ms1(s.startMs)} = before the driver ${ms1(s.beforeDriverMs)} + driver set-up ${ms1(s.setupMs)} + spawn to QMP ready ${ms1(s.spawnToQmpMs)} + cont ${ms1(s.contMs)} + state records ${ms1(s.recordsMs)}; ` +
        `floor ${ms1(s.floorStartMs)}: QMP socket connected at ${ms1(s.floorConnectedMs)}, greeting at ${ms1(s.floorGreetedMs)}, capabilities done at ${ms1(s.floorNegotiatedMs)}, cont ${ms1(s.floorContMs)}. ` +
        `For scale, conn.info (one driver operation, one effect) on the running domain: ${ms1(s.infoMs)}`,
    );
  }
  for (const k of kinds) {
    const s = out[k.key].summary;
    notes.push(`destroy ${k.key} (medians of each phase): virtkit ${ms1(s.destroyMs)} = before the driver ${ms1(s.destroyBeforeDriverMs)} + driver (close QMP, SIGTERM, exit, remove runtime dir) ${ms1(s.destroyDriverMs)} + state records ${ms1(s.destroyRecordsMs)}; floor SIGTERM to exit ${ms1(s.floorDestroyMs)}`);
  }
  return { out, specs: Object.fromEntries(kinds.map((k) => [k.key, k.spec])) };
}

// ---------------------------------------------------------------------------------------
// (2) boot to the guest's ready marker, with the disk

async function bootToMarker(lab, spec) {
  const name = 'sq';
  const d = { ours: [], floor: [], oursDestroy: [], floorDestroy: [], sawDisk: { ours: true, floor: true } };
  for (let i = 0; i < BOOT_ROUNDS; i++) {
    rm(lab.serialLog(name));
    const s = await lab.start(name);
    const o = await waitMarker(lab.serialLog(name), READY, s.t0, () => alive(s.pid));
    d.ours.push(o.ms);
    d.sawDisk.ours &&= o.text.includes('VIRTKIT-GUEST-DISK vda');
    d.oursDestroy.push((await lab.destroy(name, s.pid)).ms);

    rm(spec.serialLog);
    const b = await bareStart(spec);
    const f = await waitMarker(spec.serialLog, READY, b.t0, () => b.isAlive());
    d.floor.push(f.ms);
    d.sawDisk.floor &&= f.text.includes('VIRTKIT-GUEST-DISK vda');
    d.floorDestroy.push(await bareDestroy(b));
    log(`(2) round ${i + 1}/${BOOT_ROUNDS}: boot to ${READY} ${o.ms.toFixed(0)}/${f.ms.toFixed(0)} ms (virtkit/floor)`);
  }
  if (!d.sawDisk.ours || !d.sawDisk.floor) notes.push(`boot: the guest did not report its disk (virtkit: ${d.sawDisk.ours}, floor: ${d.sawDisk.floor})`);
  row({ id: 'boot.marker', metric: `boot to ${READY}, qcow2 disk (ms, median of ${BOOT_ROUNDS})`, unit: 'ms', virtkit: median(d.ours), floor: median(d.floor), floorLabel: 'bare QEMU, same argv, from spawn' });
  row({ id: 'destroy.booted', metric: `destroy, booted guest (ms, median of ${BOOT_ROUNDS})`, unit: 'ms', virtkit: median(d.oursDestroy), floor: median(d.floorDestroy), floorLabel: 'bare QEMU: SIGTERM to exit event', maxRatio: 2 });
  return d;
}

// ---------------------------------------------------------------------------------------
// (4) 20 tiny VMs started at once

/** This process's threads' time on a CPU and waiting for one (ns), from schedstat. */
function schedstat() {
  let run = 0;
  let wait = 0;
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const [a, b] = readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ').map(Number);
      run += a;
      wait += b;
    } catch {}
  }
  return { run, wait };
}
const schedDelta = (a) => {
  const b = schedstat();
  return { runMs: (b.run - a.run) / 1e6, waitMs: (b.wait - a.wait) / 1e6 };
};

const rssOf = (pid) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
const MiB = (b) => b / (1 << 20);

async function concurrentStarts(lab) {
  const names = Array.from({ length: CONCURRENT }, (_, i) => `v${String(i).padStart(2, '0')}`);
  for (const n of names) await lab.define(n, { memoryMiB: CONCURRENT_MIB });
  global.gc?.();
  const rssIdle = process.memoryUsage().rss;
  const ops0 = { ...lab.opCount };
  const sched0 = schedstat();
  const t0 = performance.now();
  const recordsWait = []; // per VM: from its driver outcome to its start resolving
  const started = await Promise.all(
    names.map(async (n) => {
      const status = await lab.conn.start(n);
      const end = performance.now() - t0;
      if (status.state !== 'running') throw new Error(`start ${n}: ${status.state}`);
      const d = lab.span('start', n, t0);
      if (d) recordsWait.push(end - d.end);
      const pid = lab.pid(n);
      ourPids.add(pid);
      return pid;
    }),
  );
  const ms = performance.now() - t0;
  const sched = schedDelta(sched0);
  const rss = process.memoryUsage().rss;
  const maxRss = process.resourceUsage().maxRSS * 1024;
  const qemuRss = started.map(rssOf);
  const specs = names.map((n, i) => lab.floorSpec(n, started[i]));
  const sched1 = schedstat();
  const t1 = performance.now();
  const destroys = await Promise.all(names.map((n, i) => lab.destroy(n, started[i])));
  const destroyMs = performance.now() - t1;
  const schedDestroy = schedDelta(sched1);
  const ops = Object.fromEntries(Object.entries(lab.opCount).map(([k, v]) => [k, v - (ops0[k] ?? 0)]).filter(([, v]) => v > 0));
  log(`(4) ${CONCURRENT} at once: started in ${ms.toFixed(0)} ms, destroyed in ${destroyMs.toFixed(0)} ms`);

  // The floor: the same 20 argvs, spawned and driven by hand, all at once.
  const fsched0 = schedstat();
  const f0 = performance.now();
  const bares = await Promise.allSettled(specs.map(bareStart));
  const floorMs = performance.now() - f0;
  const floorSched = schedDelta(fsched0);
  const ok = bares.filter((b) => b.status === 'fulfilled').map((b) => b.value);
  const f1 = performance.now();
  await Promise.all(ok.map(bareDestroy));
  const floorDestroyMs = performance.now() - f1;
  const failed = bares.find((b) => b.status === 'rejected');
  if (failed) throw failed.reason;

  row({ id: 'concurrent.start', metric: `${CONCURRENT} VMs (${CONCURRENT_MIB} MiB, diskless) started at once: total (ms)`, unit: 'ms', virtkit: ms, floor: floorMs, floorLabel: `${CONCURRENT} bare QEMUs, same argvs, at once` });
  row({ id: 'concurrent.destroy', metric: `${CONCURRENT} VMs destroyed at once: total (ms)`, unit: 'ms', virtkit: destroyMs, floor: floorDestroyMs, floorLabel: `${CONCURRENT} bare QEMUs: SIGTERM to exit` });
  row({ id: 'concurrent.rss', metric: `manager RSS with ${CONCURRENT} VMs running (MiB)`, unit: 'MiB', virtkit: MiB(rss), floor: MiB(rssIdle), floorLabel: 'the same manager, connected, before the starts' });
  row({ id: 'concurrent.maxrss', metric: 'manager peak RSS so far, maxRSS (MiB)', unit: 'MiB', virtkit: MiB(maxRss) });
  notes.push(
    `${CONCURRENT} VMs: each QEMU's RSS right after start: median ${MiB(median(qemuRss)).toFixed(0)} MiB, total ${MiB(qemuRss.reduce((a, b) => a + b, 0)).toFixed(0)} MiB ` +
      `(machine: ${cpus().length} CPUs, ${MiB(totalmem()).toFixed(0)} MiB); the manager's RSS includes the plugin's worker thread`,
  );
  notes.push(
    `${CONCURRENT} VMs at once, this process's threads (main + plugin worker) on a CPU / waiting for one: starts ${ms1(sched.runMs)} / ${ms1(sched.waitMs)}, ` +
      `destroys ${ms1(schedDestroy.runMs)} / ${ms1(schedDestroy.waitMs)}; the floor's starts ${ms1(floorSched.runMs)} / ${ms1(floorSched.waitMs)}. Driver operations run: ${JSON.stringify(ops)}`,
  );
  if (recordsWait.length) {
    notes.push(
      `${CONCURRENT} VMs at once: from a VM's driver outcome to its start resolving (the state records): median ${ms1(median(recordsWait))}, max ${ms1(Math.max(...recordsWait))}; ` +
        `for the destroys: median ${ms1(median(destroys.map((x) => x.recordsMs)))}, max ${ms1(Math.max(...destroys.map((x) => x.recordsMs)))}`,
    );
  }
  return { ms, destroyMs, floorMs, floorDestroyMs, rssIdle, rss, maxRss, qemuRss, recordsWait, destroys, sched, schedDestroy, floorSched, ops };
}

// ---------------------------------------------------------------------------------------
// (5) 1000 defined domains: listing them, in-process and through the CLI

const summaries = (docs) => docs.sort((a, b) => (a.name < b.name ? -1 : 1)).map((d) => ({ name: d.name, uuid: d.config.uuid, state: d.status?.state ?? 'shut-off', reason: d.status?.reason ?? 'unknown', persistent: true }));
const domainFiles = (names) => names.filter((f) => f.endsWith('.json') && !f.startsWith('.'));

/** The same files read the cheapest way Node can: readdirSync, readFileSync and parse each. */
function rawList(domainsDir) {
  return summaries(domainFiles(readdirSync(domainsDir)).map((f) => JSON.parse(readFileSync(join(domainsDir, f), 'utf8'))));
}

/** The same with fs/promises, every file at once (as the state store reads them). */
async function rawListAsync(domainsDir) {
  const files = domainFiles(await readdir(domainsDir));
  return summaries(await Promise.all(files.map(async (f) => JSON.parse(await readFile(join(domainsDir, f), 'utf8')))));
}

/** The floor of a define: one durable file per domain (temp file, fsync, rename). */
async function rawDefine(dir, name, doc) {
  const tmp = join(dir, `.${name}.tmp`);
  const fh = await openFile(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify(doc));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, `${name}.json`));
}

async function inFlight(n, count, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    for (let i; (i = next++) < count; ) await fn(i);
  }));
}

function runNode(args, env) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    execFile(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const ms = performance.now() - t0;
      if (err) reject(new Error(`node ${args.slice(0, 3).join(' ')}: ${err.message}\n${stderr}`));
      else resolve({ ms, stdout });
    });
  });
}

// A fresh Node process printing the same listing from the same files, as the CLI's floor.
const RAW_LIST_CLI = `
const { readdirSync, readFileSync } = require('node:fs');
const dir = process.argv[1];
const docs = readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('.')).map((f) => JSON.parse(readFileSync(dir + '/' + f, 'utf8')));
docs.sort((a, b) => (a.name < b.name ? -1 : 1));
process.stdout.write(docs.map((d) => d.name.padEnd(20) + ' ' + (d.status?.state ?? 'shut-off')).join('\\n') + '\\n');
`;

async function manyDomains() {
  const lab = await new Lab().open();
  try {
    const names = Array.from({ length: DEFINED }, (_, i) => `d${String(i).padStart(4, '0')}`);
    const perDefine = new Array(DEFINED);
    const t0 = performance.now();
    await inFlight(DEFINE_IN_FLIGHT, DEFINED, async (i) => {
      const t = performance.now();
      await lab.conn.define(lab.config(names[i], { memoryMiB: 64 }));
      perDefine[i] = performance.now() - t;
    });
    const defineMs = performance.now() - t0;
    log(`(5) defined ${DEFINED} domains in ${(defineMs / 1000).toFixed(1)} s`);

    const scratch = join(lab.root, 'raw-define');
    mkdirSync(scratch);
    const f0 = performance.now();
    await inFlight(DEFINE_IN_FLIGHT, DEFINED, (i) => rawDefine(scratch, names[i], { name: names[i], config: lab.config(names[i], { memoryMiB: 64 }), status: { state: 'shut-off', reason: 'unknown' } }));
    const floorDefineMs = performance.now() - f0;

    const domainsDir = join(lab.stateRoot, 'nodes', 'virtkit-plugin-kvm', 'system', 'domains');
    if (rawList(domainsDir).length !== DEFINED) throw new Error(`expected ${DEFINED} domain files in ${domainsDir}`);
    const list = [];
    const raw = [];
    const rawAsync = [];
    await lab.conn.listDomains({ all: true });
    await rawListAsync(domainsDir);
    for (let i = 0; i < 10; i++) {
      let t = performance.now();
      const got = await lab.conn.listDomains({ all: true });
      list.push(performance.now() - t);
      if (got.length !== DEFINED) throw new Error(`listDomains gave ${got.length} domains, not ${DEFINED}`);
      t = performance.now();
      rawList(domainsDir);
      raw.push(performance.now() - t);
      t = performance.now();
      await rawListAsync(domainsDir);
      rawAsync.push(performance.now() - t);
    }

    const cliArgs = [join(root, 'packages/cli/bin/virtkit.js'), '-c', 'qemu:///system', 'list', '--all'];
    // Where the CLI's time goes: a second connection to this node on the same (loaded) host,
    // counting how often it reads every domain file. Instrumentation only (FileStore's method
    // is wrapped for the duration, then restored).
    const scans = { n: 0 };
    const listDomains = FileStore.prototype.listDomains;
    FileStore.prototype.listDomains = function (...a) {
      scans.n++;
      return listDomains.apply(this, a);
    };
    let connectMs;
    try {
      const t = performance.now();
      const c2 = await connect('qemu:///system', { host: lab.host });
      connectMs = performance.now() - t;
      await c2.close();
    } finally {
      FileStore.prototype.listDomains = listDomains;
    }
    const empty = await new Lab().open();
    let emptyConnectMs;
    const cliEmpty = [];
    try {
      const t = performance.now();
      const c2 = await connect('qemu:///system', { host: empty.host });
      emptyConnectMs = performance.now() - t;
      await c2.close();
      const emptyConfig = join(empty.root, 'virtkit.json');
      writeFileSync(emptyConfig, JSON.stringify({ stateRoot: empty.stateRoot, runtimeRoot: empty.runtimeRoot, cacheDir: join(root, '.cache/glue') }));
      await runNode(cliArgs, { VIRTKIT_CONFIG: emptyConfig });
      for (let i = 0; i < 3; i++) cliEmpty.push((await runNode(cliArgs, { VIRTKIT_CONFIG: emptyConfig })).ms);
    } finally {
      await empty.close();
    }

    // The CLI, end to end, in a fresh process each time; the same roots, and the repository's
    // warm glue cache (as an installed host has its own).
    const configFile = join(lab.root, 'virtkit.json');
    writeFileSync(configFile, JSON.stringify({ stateRoot: lab.stateRoot, runtimeRoot: lab.runtimeRoot, cacheDir: join(root, '.cache/glue') }));
    const env = { VIRTKIT_CONFIG: configFile };
    const cli = [];
    const cliFloor = [];
    const first = await runNode(cliArgs, env); // warm-up, not counted
    const shown = names.filter((n) => first.stdout.includes(n)).length;
    if (shown !== DEFINED) throw new Error(`virtkit list --all showed ${shown} of ${DEFINED} domains:\n${first.stdout.slice(0, 500)}`);
    await runNode(['-e', RAW_LIST_CLI, domainsDir]);
    for (let i = 0; i < 3; i++) {
      cli.push((await runNode(cliArgs, env)).ms);
      cliFloor.push((await runNode(['-e', RAW_LIST_CLI, domainsDir])).ms);
    }
    const nodeBoot = [];
    for (let i = 0; i < 3; i++) nodeBoot.push((await runNode(['-e', '0'])).ms);
    log(`(5) listDomains ${median(list).toFixed(1)} ms, virtkit list --all ${median(cli).toFixed(0)} ms`);

    row({ id: 'many.define', metric: `define ${DEFINED} domains, ${DEFINE_IN_FLIGHT} in flight (ms, total)`, unit: 'ms', virtkit: defineMs, floor: floorDefineMs, floorLabel: 'one durable file each: temp, fsync, rename' });
    row({ id: 'many.list', metric: `listDomains({ all: true }), ${DEFINED} domains (ms, median of 10)`, unit: 'ms', virtkit: median(list), floor: median(raw), floorLabel: 'readdirSync + readFileSync and parse each file' });
    row({ id: 'many.cli.empty', metric: 'virtkit list --all, empty node, end to end (ms, median of 3)', unit: 'ms', virtkit: median(cliEmpty), floor: median(nodeBoot), floorLabel: 'fresh node -e 0' });
    row({ id: 'many.cli', metric: `virtkit list --all, ${DEFINED} domains, end to end (ms, median of 3)`, unit: 'ms', virtkit: median(cli), floor: median(cliFloor), floorLabel: 'fresh node: readdir + parse + print' });
    const firstN = median(perDefine.slice(0, 50));
    const lastN = median(perDefine.slice(-50));
    notes.push(
      `define: median latency of one define, ${DEFINE_IN_FLIGHT} in flight: ${ms1(firstN)} for the first 50, ${ms1(lastN)} for the last 50 (grows with the number of domains defined)`,
      `listDomains: the same files read with fs/promises, all at once (as the store does): ${ms1(median(rawAsync))}, against ${ms1(median(raw))} with readFileSync`,
      `virtkit list --all: a bare \`node -e 0\` takes ${ms1(median(nodeBoot))} here; the CLI rows include it. connect() to this ${DEFINED}-domain node on an already loaded host: ${ms1(connectMs)} ` +
        `(an empty node: ${ms1(emptyConnectMs)}), reading every domain file ${scans.n} times; the CLI's listing reads them once more`,
    );
    return { defineMs, floorDefineMs, perDefine, list, raw, rawAsync, cli, cliFloor, cliEmpty, nodeBoot, connectMs, emptyConnectMs, connectScans: scans.n };
  } finally {
    await lab.close();
  }
}

// ---------------------------------------------------------------------------------------

const started = performance.now();
const results = { date: new Date().toISOString(), node: process.version, platform: `${process.platform}-${process.arch}`, cpus: cpus().length, cpuModel: cpus()[0]?.model, guest: { kernel: manifest.kernelVersion, cmdline: CMDLINE }, details: {} };

let lab;
try {
  lab = await new Lab().open();
  const node = await lab.conn.nodeInfo();
  const facts = Object.fromEntries(node.facts);
  results.qemu = { version: node.hypervisorVersion, accelerator: facts.accelerator, why: facts['accelerator-reason'] };
  log(`QEMU ${node.hypervisorVersion}, ${facts.accelerator} (${facts['accelerator-reason']})`);
} catch (e) {
  errorRow('setup', 'qemu:///system connection', e);
}

let specs;
if (lab?.conn) {
  try {
    const r = await startAndDestroy(lab);
    results.details.start = r.out;
    specs = r.specs;
  } catch (e) {
    errorRow('start', 'start / destroy', e);
  }
  if (specs) {
    try {
      results.details.boot = await bootToMarker(lab, specs.disk);
    } catch (e) {
      errorRow('boot', 'boot to marker', e);
    }
  }
  try {
    results.details.concurrent = await concurrentStarts(lab);
  } catch (e) {
    errorRow('concurrent', `${CONCURRENT} VMs at once`, e);
  }
}
try {
  await lab?.close();
} catch (e) {
  errorRow('cleanup', 'closing the connection', e);
}
try {
  results.details.many = await manyDomains();
} catch (e) {
  errorRow('many', `${DEFINED} defined domains`, e);
}

const leftovers = killLeftovers();
if (leftovers) {
  errors++;
  log(`${leftovers} QEMU process(es) were still running at the end: killed`);
}
removeTemps();

results.totalSeconds = (performance.now() - started) / 1000;
results.metrics = rows;
results.notes = notes;
mkdirSync(join(bench, 'dist'), { recursive: true });
writeFileSync(join(bench, 'dist', 'kvm-results.json'), JSON.stringify(results, null, 2) + '\n');

const cpu = results.cpuModel ? `${results.cpus} x ${results.cpuModel.trim()}` : `${results.cpus} CPUs`;
const q = results.qemu ? `QEMU ${results.qemu.version}, ${results.qemu.accelerator}` : 'QEMU';
process.stdout.write(`\nvirtkit bench:kvm (${results.node}, ${results.platform}, ${cpu}, ${q})\n\n${table()}\n\n`);
for (const n of notes) process.stdout.write(`note: ${n}\n`);
process.stdout.write(`\nratio = virtkit / floor (1.0x = no overhead); took ${results.totalSeconds.toFixed(1)} s; wrote bench/dist/kvm-results.json\n`);
process.exit(errors ? 1 : 0);
