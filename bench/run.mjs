#!/usr/bin/env node
// pnpm bench: prices virtkit's sandbox against the floor it is built on, in one run.
//   (a) a driver step through the Wasm component, and through the whole host path, against
//       the same driver logic as plain JS in-process;
//   (b) a plugin's cold load in a fresh process, glue cache warm and cold, against a bare
//       worker loading the same glue;
//   (c) info calls/s and latency through connect(), against a plain async function.
// Prints a table and writes bench/results.json. A missed target is reported, not fatal; only
// a measurement that could not run exits non-zero. Needs `pnpm build` first.
import { formatTable, median, quantile, fmt } from './table.mjs';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bench = join(root, 'bench');
const dist = join(bench, 'dist');
const coreDist = join(root, 'packages/core/dist');
const log = (m) => process.stderr.write(`bench: ${m}\n`);

if (!existsSync(join(coreDist, 'index.js')) || !existsSync(join(root, 'packages/plugin-test/dist/plugin-test.wasm'))) {
  log('build first: pnpm build');
  process.exit(1);
}

// QuickJS components use Wasm extended-const, behind a flag in Node 20's V8 (core's helper
// sets it only where needed); must precede the first compile.
(await import(pathToFileURL(join(coreDist, 'wasm/wasm-features.js')).href)).enableWasmExtendedConst();

const importCore = (p) => import(pathToFileURL(join(coreDist, p)).href);
const { connect, Host } = await importCore('index.js');
const { loadGlue } = await importCore('wasm/glue.js');
const { PluginHost } = await importCore('wasm/plugin-host.js');

const GLUE_CACHE = join(root, '.cache', 'glue');
const NO_GRANTS = { executables: [], read: [], write: [], sockets: [], devices: [] };
const temps = [];
const tempDir = (prefix) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  temps.push(d);
  return d;
};

// ---------------------------------------------------------------------------------------
// Statistics and formatting



const rows = [];
const notes = [];
let errors = 0;

/**
 * One table row. `lowerIsBetter` says which way the metric goes; the ratio is always "how
 * many times the floor's cost virtkit pays" (virtkit / floor for times, floor / virtkit for
 * rates), so 1.0x means no overhead at all.
 */
function row({ id, metric, unit, virtkit, floor, floorLabel, target, lowerIsBetter = true }) {
  const ratio = floor ? (lowerIsBetter ? virtkit / floor : floor / virtkit) : undefined;
  const met = target === undefined ? undefined : lowerIsBetter ? virtkit < target : virtkit > target;
  rows.push({ id, metric, unit, virtkit, floor, floorLabel, ratio, target, targetText: target === undefined ? undefined : lowerIsBetter ? `< ${target} ${unit}` : `> ${target} ${unit}`, met });
}

function errorRow(id, metric, e) {
  errors++;
  rows.push({ id, metric, error: String(e?.stack ?? e) });
  log(`${metric}: FAILED: ${e?.stack ?? e}`);
}

const table = () => formatTable(rows, fmt, 1);

// ---------------------------------------------------------------------------------------
// The spin driver, built twice: as a component, and as plain JS for the in-process floor.

function sourcesKey() {
  const jcoMain = createRequire(join(root, 'packages/driver-sdk/package.json')).resolve('@bytecodealliance/jco');
  const h = createHash('sha256').update(process.version).update(jcoMain);
  const files = [
    join(bench, 'spin-driver.ts'),
    join(root, 'packages/driver-sdk/src/guest.ts'),
    join(root, 'packages/driver-sdk/bundle.config.mjs'),
    ...readdirSync(join(root, 'wit/driver')).map((f) => join(root, 'wit/driver', f)),
  ].sort();
  for (const f of files) h.update(relative(root, f)).update(readFileSync(f));
  return h.digest('hex').slice(0, 32);
}

function run(cmd, args, opts = {}) {
  return new Promise((ok, fail) => {
    execFile(cmd, args, { maxBuffer: 16 << 20, ...opts }, (err, stdout, stderr) => (err ? fail(new Error(`${args.join(' ')}: ${err.message}\n${stderr}`)) : ok(stdout)));
  });
}

async function buildSpin() {
  mkdirSync(dist, { recursive: true });
  const wasm = join(dist, 'spin.wasm');
  const keyFile = join(dist, 'spin.key');
  const key = sourcesKey();
  if (!existsSync(wasm) || !existsSync(keyFile) || readFileSync(keyFile, 'utf8') !== key) {
    log('building bench/dist/spin.wasm');
    await run(process.execPath, [join(root, 'packages/driver-sdk/bin/virtkit-driver.js'), 'build', join(bench, 'spin-driver.ts'), '-o', wasm], { cwd: root });
    writeFileSync(keyFile, key);
  }
  // The plain-JS twin: the same module bundled with rolldown (jco's own bundler), with the
  // component's one import replaced by a no-op shim.
  const jcoMain = createRequire(join(root, 'packages/driver-sdk/package.json')).resolve('@bytecodealliance/jco');
  const { rolldown } = await import(pathToFileURL(createRequire(jcoMain).resolve('rolldown')).href);
  const plain = join(dist, 'spin-plain.mjs');
  const b = await rolldown({
    input: join(bench, 'spin-driver.ts'),
    platform: 'neutral',
    logLevel: 'silent',
    resolve: { alias: { 'virtkit:driver/host@0.1.0': join(bench, 'host-shim.mjs'), 'virtkit:driver/host@0.2.0': join(bench, 'host-shim.mjs'), 'virtkit:driver/host@0.3.0': join(bench, 'host-shim.mjs') } },
  });
  await b.write({ file: plain, format: 'esm' });
  await b.close();
  return { wasm, plain };
}

// ---------------------------------------------------------------------------------------
// (a) Step overhead

const spinRequest = (steps) => ({
  kind: 'info',
  node: { uri: 'spin:///default', stateDir: '/nonexistent', runtimeDir: '/nonexistent' },
  args: JSON.stringify({ steps }),
});
// A constant clock reading: the bench prices the step, not the clock.
const CLOCK = { tag: 'ok', val: { tag: 'clock', val: { wallMs: 1_700_000_000_000n, monotonicNs: 123_456_789n } } };

/** Drives one operation to the end, in-process; returns how many `next` calls it took. */
function drive(driver, steps) {
  const op = new driver.Operation(spinRequest(steps));
  try {
    let s = op.next(undefined);
    let calls = 1;
    while (s.tag === 'effect') {
      s = op.next(CLOCK);
      calls++;
    }
    if (s.tag !== 'done') throw new Error(`spin failed: ${JSON.stringify(s.val)}`);
    return calls;
  } finally {
    op[Symbol.dispose]?.();
  }
}

/**
 * Marginal cost of one step: (T(N steps) - T(0 steps)) / N, so the fixed cost of an
 * operation (construction, first and last step, a worker round trip) is left out.
 * Median of `rounds`; also returns the fixed cost T(0).
 */
async function perStep(runOp, n, rounds, zeroReps) {
  await runOp(n); // warm-up: JIT, Wasm tier-up, worker start
  for (let i = 0; i < zeroReps; i++) await runOp(0);
  const per = [];
  const fixed = [];
  for (let r = 0; r < rounds; r++) {
    let t = performance.now();
    await runOp(n);
    const big = performance.now() - t;
    t = performance.now();
    for (let i = 0; i < zeroReps; i++) await runOp(0);
    const zero = (performance.now() - t) / zeroReps;
    fixed.push(zero);
    per.push(((big - zero) / n) * 1000);
  }
  return { usPerStep: median(per), fixedUs: median(fixed) * 1000, rounds: per };
}

async function instantiateInProcess(glueDir) {
  // As core's worker does: glue from the host's own transpile, imports under both keys.
  const host = { log() {} };
  const { instantiate } = await import(pathToFileURL(join(glueDir, 'driver.js')).href);
  return instantiate(async (name) => WebAssembly.compile(await readFile(join(glueDir, name))), {
    'virtkit:driver/host': host,
    'virtkit:driver/host@0.1.0': host,
    'virtkit:driver/host@0.2.0': host,
    'virtkit:driver/host@0.3.0': host,
  });
}

/** The floor of a worker round trip: post a request-sized message, get a reply. */
async function bareWorkerRoundTrip(reps) {
  const w = new Worker("const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage({ t: 'done', id: m.id, outcome: { events: [], domains: [], clearRuntime: false } }));", { eval: true });
  try {
    const once = (id) => new Promise((ok) => {
      w.once('message', ok);
      w.postMessage({ t: 'run', id, request: spinRequest(0) });
    });
    for (let i = 0; i < 200; i++) await once(i);
    const lat = [];
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      await once(i);
      lat.push((performance.now() - t) * 1000);
    }
    return median(lat);
  } finally {
    await w.terminate();
  }
}

async function stepOverhead(spin) {
  const details = {};
  const { driver: plainDriver } = await import(`${pathToFileURL(spin.plain).href}?t=${Date.now()}`);
  const plain = await perStep((n) => drive(plainDriver, n), 200_000, 7, 200);
  details.plainJs = plain;
  log(`(a) plain JS: ${plain.usPerStep.toFixed(3)} us/step`);

  const glue = await loadGlue('bench-spin@0.0.0', spin.wasm, GLUE_CACHE);
  const instance = await instantiateInProcess(glue.dir);
  const wasm = await perStep((n) => drive(instance.driver, n), 4000, 7, 50);
  details.wasmMainThread = wasm;
  log(`(a) Wasm, main thread: ${wasm.usPerStep.toFixed(2)} us/step`);

  const ph = new PluginHost({ plugin: 'bench-spin@0.0.0', glueDir: glue.dir, grants: NO_GRANTS });
  try {
    await ph.start();
    const full = await perStep((n) => ph.run(spinRequest(n)), 4000, 7, 50);
    details.hostPath = full;
    log(`(a) full host path: ${full.usPerStep.toFixed(2)} us/step, ${full.fixedUs.toFixed(0)} us/op`);
    const rt = await bareWorkerRoundTrip(1000);
    details.bareWorkerRoundTripUs = rt;

    row({ id: 'step.wasm', metric: 'driver step, Wasm component in-process (us/step)', unit: 'us', virtkit: wasm.usPerStep, floor: plain.usPerStep, floorLabel: 'same driver as plain JS in-process', target: 50 });
    row({ id: 'step.host', metric: 'driver step, full host path: worker + effect (us/step)', unit: 'us', virtkit: full.usPerStep, floor: plain.usPerStep, floorLabel: 'same driver as plain JS in-process', target: 50 });
    row({ id: 'op.wasm', metric: 'operation fixed cost, 0 effects, Wasm in-process (us)', unit: 'us', virtkit: wasm.fixedUs, floor: plain.fixedUs, floorLabel: 'same operation as plain JS in-process' });
    row({ id: 'op.host', metric: 'operation round trip, 0 effects, host path (us)', unit: 'us', virtkit: full.fixedUs, floor: rt, floorLabel: 'bare worker postMessage echo' });
  } finally {
    await ph.close();
  }
  return details;
}

// ---------------------------------------------------------------------------------------
// (b) Plugin cold load, each in a fresh process

async function loadOnce(mode, dir) {
  const out = await run(process.execPath, [join(bench, 'load-once.mjs'), mode, dir], { cwd: root });
  return JSON.parse(out.trim().split('\n').pop());
}

async function coldLoad() {
  const N = 5;
  const details = { warm: [], cold: [], rawWarm: [], rawCold: [] };
  // The glue the warm runs find, made once (and the raw floor's glue dir).
  const glue = await loadGlue('@virtkit/plugin-test@0.1.0', join(root, 'packages/plugin-test/dist/plugin-test.wasm'), GLUE_CACHE);
  await loadOnce('virtkit', GLUE_CACHE); // first touch of the files: not counted
  for (let i = 0; i < N; i++) {
    details.warm.push(await loadOnce('virtkit', GLUE_CACHE));
    details.rawWarm.push(await loadOnce('raw', glue.dir));
    details.cold.push(await loadOnce('virtkit', tempDir('virtkit-bench-glue-')));
    details.rawCold.push(await loadOnce('raw-cold', tempDir('virtkit-bench-glue-')));
  }
  const m = (xs, k = 'totalMs') => median(xs.map((x) => x[k]));
  const summary = {
    warmMs: m(details.warm), warmImportCoreMs: m(details.warm, 'importMs'), warmHostLoadMs: m(details.warm, 'loadMs'),
    coldMs: m(details.cold), coldImportCoreMs: m(details.cold, 'importMs'), coldHostLoadMs: m(details.cold, 'loadMs'),
    rawWarmMs: m(details.rawWarm), rawColdMs: m(details.rawCold), rawColdTranspileMs: m(details.rawCold, 'transpileMs'),
    nodeBootMs: m(details.warm, 'nodeBootMs'),
  };
  log(`(b) warm ${summary.warmMs.toFixed(0)} ms, cold ${summary.coldMs.toFixed(0)} ms`);
  // Like for like: the floor loads the same glue in a bare worker, with nothing of virtkit
  // imported; so the target row is virtkit's loading step, and the whole fresh process
  // (importing core first) is its own row.
  row({ id: 'load.warm', metric: 'plugin load, glue cache warm: Host.init + forScheme (ms, median of 5)', unit: 'ms', virtkit: summary.warmHostLoadMs, floor: summary.rawWarmMs, floorLabel: 'bare worker: import glue, instantiate, describe', target: 150 });
  row({ id: 'load.process', metric: 'fresh process: import @virtkit/core + plugin load, warm (ms)', unit: 'ms', virtkit: summary.warmMs, floor: summary.rawWarmMs, floorLabel: 'bare worker: import glue, instantiate, describe' });
  row({ id: 'load.cold', metric: 'plugin load, glue cache cold (ms, median of 5)', unit: 'ms', virtkit: summary.coldMs, floor: summary.rawColdMs, floorLabel: 'jco transpile + bare worker load' });
  notes.push(
    `plugin load, warm: import @virtkit/core ${summary.warmImportCoreMs.toFixed(0)} ms + Host.init/forScheme ${summary.warmHostLoadMs.toFixed(0)} ms` +
      ` (Node's own start-up before the script, ${summary.nodeBootMs.toFixed(0)} ms, not counted)`,
    `plugin load, cold: import @virtkit/core ${summary.coldImportCoreMs.toFixed(0)} ms + Host.init/forScheme incl. jco transpile ${summary.coldHostLoadMs.toFixed(0)} ms` +
      ` (transpile alone in the floor: ${summary.rawColdTranspileMs.toFixed(0)} ms)`,
  );
  return { summary, runs: details };
}

// ---------------------------------------------------------------------------------------
// (c) info through connect()

/** Calls `fn` back to back from `concurrency` loops for `ms`; per-call latency in us. */
async function hammer(fn, concurrency, ms) {
  const lat = [];
  const end = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await fn();
        lat.push((performance.now() - t) * 1000);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  return { calls: lat.length, perSec: lat.length / elapsed, p50Us: quantile(lat, 0.5), p99Us: quantile(lat, 0.99) };
}

async function infoThroughput() {
  const dir = tempDir('virtkit-bench-info-');
  const host = await new Host({
    stateRoot: join(dir, 'state'),
    runtimeRoot: join(dir, 'run'),
    cacheDir: GLUE_CACHE,
    pluginPaths: [join(root, 'packages/plugin-test')],
    pluginSearch: [],
  }).init();
  const conn = await connect('test:///default', { host });
  try {
    const sample = await conn.info('test');
    // The floor: the same loop around a plain async function answering the same object.
    const floorInfo = async (name) => (name === 'test' ? sample : undefined);
    const virtkit = () => conn.info('test');
    const floor = () => floorInfo('test');
    for (let i = 0; i < 300; i++) await virtkit();
    await hammer(floor, 1, 100);
    const out = {
      sequential: await hammer(virtkit, 1, 2000),
      concurrent8: await hammer(virtkit, 8, 2000),
      floorSequential: await hammer(floor, 1, 500),
      floorConcurrent8: await hammer(floor, 8, 500),
    };
    log(`(c) info: ${Math.round(out.sequential.perSec)}/s sequential, ${Math.round(out.concurrent8.perSec)}/s with 8 in flight`);
    const add = (id, metric, v, f) => {
      row({ id: `${id}.rate`, metric: `${metric}: calls/s`, unit: '/s', virtkit: v.perSec, floor: f.perSec, floorLabel: 'plain async function, same loop', lowerIsBetter: false });
      row({ id: `${id}.p50`, metric: `${metric}: p50 latency`, unit: 'us', virtkit: v.p50Us, floor: f.p50Us, floorLabel: 'plain async function, same loop' });
      row({ id: `${id}.p99`, metric: `${metric}: p99 latency`, unit: 'us', virtkit: v.p99Us, floor: f.p99Us, floorLabel: 'plain async function, same loop' });
    };
    add('info.seq', 'info on test:///default, sequential', out.sequential, out.floorSequential);
    add('info.c8', 'info on test:///default, 8 in flight', out.concurrent8, out.floorConcurrent8);
    return out;
  } finally {
    await conn.close();
    await host.close();
  }
}

// ---------------------------------------------------------------------------------------

const started = performance.now();
const results = { date: new Date().toISOString(), node: process.version, platform: `${process.platform}-${process.arch}`, cpus: cpus().length, cpuModel: cpus()[0]?.model, details: {} };

let spin;
try {
  spin = await buildSpin();
} catch (e) {
  errorRow('step', 'driver step (building the spin driver)', e);
}
if (spin) {
  try {
    results.details.step = await stepOverhead(spin);
  } catch (e) {
    errorRow('step', 'driver step', e);
  }
}
try {
  results.details.load = await coldLoad();
} catch (e) {
  errorRow('load', 'plugin load', e);
}
try {
  results.details.info = await infoThroughput();
} catch (e) {
  errorRow('info', 'info through connect()', e);
}
for (const d of temps) rmSync(d, { recursive: true, force: true });

results.totalSeconds = (performance.now() - started) / 1000;
results.metrics = rows;
results.notes = notes;
writeFileSync(join(bench, 'results.json'), JSON.stringify(results, null, 2) + '\n');

const cpu = results.cpuModel ? `${results.cpus} x ${results.cpuModel.trim()}` : `${results.cpus} CPUs`;
process.stdout.write(`\nvirtkit bench (${results.node}, ${results.platform}, ${cpu})\n\n${table()}\n\n`);
for (const n of notes) process.stdout.write(`note: ${n}\n`);
process.stdout.write(`\nratio = how many times the floor's cost virtkit pays (1.0x = none); took ${results.totalSeconds.toFixed(1)} s; wrote bench/results.json\n`);
process.exit(errors ? 1 : 0);
