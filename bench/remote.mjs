#!/usr/bin/env node
// pnpm bench:remote: prices virtkit's remote path, `info` on test:///default through virtkitd
// over mutual TLS, against the floor of a bare echo over the same TLS frames, in one run.
//   (a) 1 client awaiting each call for ~2 s: calls/s, p50, p99;
//   (b) 8 calls in flight for ~2 s: calls/s, p50, p99.
// The daemon is the BUILT virtkitd (packages/daemon/bin/virtkitd.js) in its own process, with
// a temp config and PKI; the client is connectRemote with an admin certificate. The floor is a
// child process (this file, run with `--echo`) that answers each frame with a reply of the size
// virtkit's reply has, over @virtkit/transport-tls listen/connect (4-byte length + JSON frames).
// Prints a table and writes bench/dist/remote-results.json. A missed target is reported, not
// fatal; only a measurement that could not run exits non-zero. Needs `pnpm build` first.
import { formatTable, median, quantile, fmt } from './table.mjs';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(import.meta.url);
const root = join(dirname(here), '..');
const dist = join(root, 'bench', 'dist');
const DAEMON = join(root, 'packages/daemon/bin/virtkitd.js');
const pkgDist = (pkg, file = 'index.js') => pathToFileURL(join(root, 'packages', pkg, 'dist', file)).href;
const log = (m) => process.stderr.write(`bench:remote: ${m}\n`);

const WINDOW_MS = 2_000;
const WARMUP_MS = 300;
const IN_FLIGHT = 8;
const DOMAIN = 'test';

// ---------------------------------------------------------------------------------------
// The floor's echo server (child process): `node bench/remote.mjs --echo PKI_DIR REPLY_BYTES`.
// Answers every frame { id, ... } with { t: 'result', id, pad } whose JSON is REPLY_BYTES long.

if (process.argv[2] === '--echo') {
  const { listen } = await import(pkgDist('transport-tls'));
  const [pki, replyBytes] = [process.argv[3], Number(process.argv[4])];
  const pem = (f) => readFileSync(join(pki, f));
  const listener = await listen({
    host: '127.0.0.1',
    port: 0,
    ca: pem('ca-cert.pem'),
    cert: pem('server-cert.pem'),
    key: pem('server-key.pem'),
    idleTimeoutMs: 0,
    onChannel: async (ch) => {
      for await (const f of ch.frames) ch.send(sized({ t: 'result', id: f.id }, replyBytes)).catch(() => {});
    },
  });
  process.stdout.write(`${JSON.stringify({ port: listener.port })}\n`);
  process.once('SIGTERM', () => listener.close().then(() => process.exit(0)));
  await new Promise(() => {});
}

/** `base` plus a `pad` string so that its JSON is exactly `bytes` long (ids of equal width). */
function sized(base, bytes) {
  const without = JSON.stringify({ ...base, pad: '' }).length;
  return { ...base, pad: 'x'.repeat(Math.max(0, bytes - without)) };
}

// ---------------------------------------------------------------------------------------

if (!existsSync(join(root, 'packages/daemon/dist/main.js')) || !existsSync(join(root, 'packages/rpc/dist/index.js')) || !existsSync(join(root, 'packages/transport-tls/dist/index.js'))) {
  log('build first: pnpm build');
  process.exit(1);
}

const { connectRemote } = await import(pkgDist('rpc'));
const { initCa, issueClient, issueServer, connect: connectTls } = await import(pkgDist('transport-tls'));
const { encodeValue } = await import(pkgDist('rpc', 'protocol.js'));

const children = [];
const tmp = mkdtempSync(join(tmpdir(), 'vk-remote-'));
const pki = join(tmp, 'pki');
function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
}
process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});


const rows = [];
const notes = [];
let errors = 0;
const TARGET_RATIO = 2;
function row({ id, metric, unit, virtkit, floor, lowerIsBetter = true, samples, target = true }) {
  const ratio = floor ? (lowerIsBetter ? virtkit / floor : floor / virtkit) : undefined;
  const met = ratio === undefined || !target ? undefined : ratio <= TARGET_RATIO;
  rows.push({ id, metric, unit, virtkit, floor, ratio, targetText: target ? `ratio <= ${TARGET_RATIO}` : '—', met, samples });
}

/** Starts the built virtkitd on a free port; resolves with the child and its port. */
function startDaemon() {
  const config = join(tmp, 'virtkitd.json');
  writeFileSync(
    config,
    JSON.stringify({
      listen: [{ host: '127.0.0.1', port: 0 }],
      unix: { admin: false, readOnly: false },
      pki: { ca: 'pki/ca-cert.pem', cert: 'pki/server-cert.pem', key: 'pki/server-key.pem' },
      host: { stateRoot: 'state', runtimeRoot: 'run' },
      access: { identities: [{ match: { cn: 'admin' }, role: 'admin' }] },
    }),
  );
  const child = spawn(process.execPath, [DAEMON, '--config', config], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  let found = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`virtkitd did not listen within 10 s: ${err}`)), 10_000);
    child.stderr.setEncoding('utf8').on('data', (d) => {
      if (found) return; // keep draining the pipe, keep nothing
      err += d;
      const m = /"event":"listen"[^\n]*"port":(\d+)/.exec(err);
      if (m) {
        found = true;
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`virtkitd exited (${code}): ${err}`));
    });
  });
}

/** Starts the echo floor in a child process; resolves with its port. */
function startEcho(replyBytes) {
  const child = spawn(process.execPath, [here, '--echo', pki, String(replyBytes)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('echo server did not listen within 10 s')), 10_000);
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve({ child, port: JSON.parse(out.slice(0, nl)).port });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`echo server exited (${code})`));
    });
  });
}

/** CPU time (user + system, all threads) a process used so far, in µs; undefined where there is no /proc. */
function cpuOf(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK;
  } catch {
    return undefined;
  }
}
const CLK_TCK = 100; // Linux's USER_HZ for /proc/PID/stat times

/**
 * Runs `loops` loops calling `call()` back to back for `ms`; per-call latencies in µs, and the
 * CPU time per call of this process (the client) and of `serverPid` (all its threads).
 */
async function measure(call, loops, ms, serverPid) {
  const lat = [];
  const c0 = process.cpuUsage();
  const s0 = serverPid === undefined ? undefined : cpuOf(serverPid);
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        await call();
        lat.push((performance.now() - s) * 1000);
      }
    }),
  );
  const elapsed = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const s1 = serverPid === undefined ? undefined : cpuOf(serverPid);
  const cpu = { client: (c.user + c.system) / lat.length, server: s0 === undefined || s1 === undefined ? undefined : (s1 - s0) / lat.length };
  return { calls: lat.length, perSec: (lat.length / elapsed) * 1000, p50: median(lat), p99: quantile(lat, 0.99), cpu, lat };
}

/** A floor client: request frames of `reqBytes`, replies matched by id. */
async function floorClient(port, reqBytes) {
  const pem = (f) => readFileSync(join(pki, f));
  const ch = await connectTls({ host: '127.0.0.1', port, ca: pem('ca-cert.pem'), cert: pem('clients/admin-cert.pem'), key: pem('clients/admin-key.pem'), idleTimeoutMs: 0 });
  const pending = new Map();
  let nextId = 1;
  void (async () => {
    for await (const f of ch.frames) {
      const p = pending.get(f.id);
      if (p) {
        pending.delete(f.id);
        p(f);
      }
    }
  })();
  const idWidth = 7; // ids are padded so every request has the same size
  return {
    call() {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, resolve);
        ch.send(sized({ t: 'call', id, method: 'info' }, reqBytes - idWidth + String(id).length)).catch(reject);
      });
    },
    close: () => ch.close(),
  };
}

try {
  await initCa(pki);
  await issueServer(pki, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  await issueClient(pki, { commonName: 'admin' });
  const creds = { ca: join(pki, 'ca-cert.pem'), cert: join(pki, 'clients', 'admin-cert.pem'), key: join(pki, 'clients', 'admin-key.pem') };

  const daemon = await startDaemon();
  const remote = await connectRemote(`test+tls://127.0.0.1:${daemon.port}/default`, { ...creds, keepaliveMs: 0 });

  // The sizes of one info call and its reply, encoded the way rpc does (encodeValue, then
  // JSON in a 4-byte-length frame), for an id of 7 digits.
  const info = await remote.info(DOMAIN);
  const reqBytes = JSON.stringify(encodeValue({ t: 'call', id: 1_000_000, method: 'info', params: [DOMAIN] })).length;
  const replyBytes = Buffer.byteLength(JSON.stringify(encodeValue({ t: 'result', id: 1_000_000, value: info })), 'utf8');
  notes.push(`frame payloads: request ${reqBytes} B, reply ${replyBytes} B (+4 B length header each); the floor's frames are padded to the same sizes`);

  const echo = await startEcho(replyBytes);
  const floor = await floorClient(echo.port, reqBytes);

  const results = {};
  for (const [key, loops] of [['seq', 1], ['par', IN_FLIGHT]]) {
    // Alternate virtkit and floor, each after a short uncounted warm-up.
    await measure(() => remote.info(DOMAIN), loops, WARMUP_MS);
    const v = await measure(() => remote.info(DOMAIN), loops, WINDOW_MS, daemon.child.pid);
    await measure(() => floor.call(), loops, WARMUP_MS);
    const f = await measure(() => floor.call(), loops, WINDOW_MS, echo.child.pid);
    results[key] = { v, f };
    const label = loops === 1 ? '1 client, sequential' : `${IN_FLIGHT} in flight`;
    row({ id: `${key}-rate`, metric: `info over TLS, ${label}: calls/s`, unit: '/s', virtkit: v.perSec, floor: f.perSec, lowerIsBetter: false });
    row({ id: `${key}-p50`, metric: `info over TLS, ${label}: p50`, unit: 'µs', virtkit: v.p50, floor: f.p50 });
    row({ id: `${key}-p99`, metric: `info over TLS, ${label}: p99`, unit: 'µs', virtkit: v.p99, floor: f.p99 });
    notes.push(`${label}: virtkit ${v.calls} calls, floor ${f.calls} calls in ${WINDOW_MS} ms each`);
    const us = (x) => (x === undefined ? '?' : `${Math.round(x)} µs`);
    notes.push(`${label}: CPU per call (user+system): virtkit client ${us(v.cpu.client)}, virtkitd ${us(v.cpu.server)} (all its threads); floor client ${us(f.cpu.client)}, echo server ${us(f.cpu.server)}`);
  }
  notes.push('for scale: libvirt 9.0 serves ~8.4k info calls/s to one python client over TLS on this machine');

  // For scale, without a target: a call the driver answers every time. The host answers
  // `info` itself (info-reuse); `exec ['true']` on test:///default runs the driver's exec
  // operation (a fake: no process) on each call. Against the same echo floor (its frames are a
  // little larger than info's).
  for (const loops of [1, IN_FLIGHT]) {
    const label = loops === 1 ? '1 client, sequential' : `${IN_FLIGHT} in flight`;
    await measure(() => remote.exec(DOMAIN, ['true']), loops, WARMUP_MS);
    const v = await measure(() => remote.exec(DOMAIN, ['true']), loops, WINDOW_MS, daemon.child.pid);
    const f = results[loops === 1 ? 'seq' : 'par'].f;
    row({ id: `driver-${loops}-rate`, metric: `a driver call (exec true), ${label}: calls/s`, unit: '/s', virtkit: v.perSec, floor: f.perSec, lowerIsBetter: false, target: false });
    row({ id: `driver-${loops}-p50`, metric: `a driver call (exec true), ${label}: p50`, unit: 'µs', virtkit: v.p50, floor: f.p50, target: false });
    notes.push(`a driver call, ${label}: CPU per call: client ${Math.round(v.cpu.client)} µs, virtkitd ${v.cpu.server === undefined ? '?' : Math.round(v.cpu.server)} µs`);
  }

  remote.close();
  floor.close();

  console.log(formatTable(rows, fmt, 2));
  for (const n of notes) console.log(`  - ${n}`);
  mkdirSync(dist, { recursive: true });
  writeFileSync(
    join(dist, 'remote-results.json'),
    `${JSON.stringify(
      {
        when: new Date().toISOString(),
        machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model },
        sizes: { requestBytes: reqBytes, replyBytes },
        rows,
        notes,
        cpuPerCallUs: Object.fromEntries(Object.entries(results).map(([k, { v, f }]) => [k, { virtkit: v.cpu, floor: f.cpu }])),
        samplesUs: Object.fromEntries(Object.entries(results).map(([k, { v, f }]) => [k, { virtkit: v.lat.map((x) => +x.toFixed(1)), floor: f.lat.map((x) => +x.toFixed(1)) }])),
      },
      null,
      1,
    )}\n`,
  );
  log(`wrote ${join(dist, 'remote-results.json')}`);
} catch (e) {
  errors++;
  log(`ERROR: ${e?.stack ?? e}`);
} finally {
  cleanup();
}
process.exit(errors ? 1 : 0);
