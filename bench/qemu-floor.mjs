#!/usr/bin/env node
// The floor of bench/kvm.mjs, in its own small process: bare QEMU, spawned and driven over QMP
// by hand. A process of its own because fork() copies the page tables of the process that
// calls it: from the benchmark process, which holds virtkit's host and its Wasm worker, every
// spawn would cost ~10 ms more and flatter the ratio. Started by kvm.mjs with fork(); IPC:
//   { t: 'start', id, spec } -> { id, key, ms, t0Abs, pid, connectedMs, greetedMs, negotiatedMs }
//   { t: 'destroy', id, key } -> { id, ms }   (key: the start's, naming its QEMU)
// Failures come back as { id, error }. Every QEMU it started is killed when kvm.mjs goes away.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const bareChildren = new Set(); // ChildProcess of each bare QEMU
const started = new Map(); // the start request's id -> bareStart's result

function connectOnce(path) {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function tailOf(file) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}

/** Newline-delimited JSON over the QMP socket. */
function qmpClient(sock, what) {
  let buffer = '';
  const queue = [];
  let closed = false;
  let wake;
  sock.setEncoding('utf8');
  sock.on('error', () => {});
  sock.on('data', (d) => {
    buffer += d;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) queue.push(JSON.parse(line));
    }
    wake?.();
  });
  sock.on('close', () => {
    closed = true;
    wake?.();
  });
  const next = async (pred, timeoutMs = 10_000) => {
    const end = performance.now() + timeoutMs;
    for (;;) {
      const i = queue.findIndex(pred);
      if (i >= 0) return queue.splice(i, 1)[0];
      if (closed) throw new Error(`${what}: QMP closed`);
      const left = end - performance.now();
      if (left <= 0) throw new Error(`${what}: no QMP reply within ${timeoutMs} ms`);
      await new Promise((r) => {
        wake = r;
        setTimeout(r, left).unref();
      });
      wake = undefined;
    }
  };
  const call = async (execute) => {
    sock.write(`${JSON.stringify({ execute })}\n`);
    const reply = await next((m) => 'return' in m || 'error' in m);
    if (reply.error) throw new Error(`${what}: QMP ${execute}: ${reply.error.desc}`);
    return reply.return;
  };
  return { next, call };
}

/**
 * The floor of a start: make the runtime dir and log file, spawn QEMU with virtkit's argv (as virtkit does: detached, empty
 * environment, stdout/stderr to a log file), connect to its QMP socket (retrying every 1 ms
 * until it exists), read the greeting, qmp_capabilities, cont, and its return.
 */
async function bareStart(spec) {
  rmSync(spec.dir, { recursive: true, force: true });
  // What running this argv needs is part of the floor, as it is of virtkit's start: the
  // runtime dir and the log file.
  const t0 = performance.now();
  mkdirSync(spec.dir, { mode: 0o700 });
  const fd = openSync(join(spec.dir, 'qemu.log'), 'a', 0o600);
  let child;
  try {
    child = spawn(spec.argv[0], spec.argv.slice(1), { env: {}, detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  bareChildren.add(child);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() })));
  child.once('error', () => {});
  try {
    let sock;
    for (const end = t0 + 10_000; !sock; ) {
      try {
        sock = await connectOnce(spec.qmp);
      } catch (e) {
        if (e.code !== 'ENOENT' && e.code !== 'ECONNREFUSED') throw e;
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`bare QEMU exited (${child.exitCode ?? child.signalCode}) before its monitor came up: ${tailOf(join(spec.dir, 'qemu.log'))}`);
        if (performance.now() > end) throw new Error(`bare QEMU's monitor ${spec.qmp} did not come up within 10 s`);
        await sleep(1);
      }
    }
    const connected = performance.now() - t0;
    const q = qmpClient(sock, 'bare QEMU');
    await q.next((m) => 'QMP' in m);
    const greeted = performance.now() - t0;
    await q.call('qmp_capabilities');
    const negotiated = performance.now() - t0;
    await q.call('cont');
    const ms = performance.now() - t0;
    return { ms, t0, child, sock, exited, connectedMs: connected, greetedMs: greeted, negotiatedMs: negotiated };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

/** The floor of a destroy: from kill(SIGTERM) to the child's 'exit' event. */
async function bareDestroy(b) {
  b.sock.destroy();
  const t0 = performance.now();
  b.child.kill('SIGTERM');
  const timer = setTimeout(() => b.child.kill('SIGKILL'), 10_000);
  const x = await b.exited;
  clearTimeout(timer);
  bareChildren.delete(b.child);
  if (x.signal === 'SIGKILL') throw new Error('bare QEMU ignored SIGTERM for 10 s');
  return x.at - t0;
}

process.on('message', async (m) => {
  try {
    if (m.t === 'start') {
      const b = await bareStart(m.spec);
      started.set(m.id, b);
      process.send({ id: m.id, key: m.id, ms: b.ms, t0Abs: performance.timeOrigin + b.t0, pid: b.child.pid, connectedMs: b.connectedMs, greetedMs: b.greetedMs, negotiatedMs: b.negotiatedMs });
    } else if (m.t === 'destroy') {
      const b = started.get(m.key);
      started.delete(m.key);
      process.send({ id: m.id, ms: await bareDestroy(b) });
    }
  } catch (e) {
    process.send({ id: m.id, error: String(e?.stack ?? e) });
  }
});

function killAll() {
  for (const c of bareChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('disconnect', () => {
  killAll();
  process.exit(0);
});
process.on('exit', killAll);
