// info answered by the host from the driver's last answer (world 0.3.0 info-reuse): on
// test:///default with the real plugin-test component (monotonic and fixed CPU time), and the
// process source against real processes and /proc.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { connect, type Connection, type Host } from '../src/index.js';
import { InfoReuse } from '../src/connection/info-reuse.js';
import type { DomainInfo, Outcome } from '../src/types.js';
import { readStat } from '../src/wasm/proc.js';
import { testHost } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('info on test:///default', () => {
  let host: Host;
  let conn: Connection;
  /** How many operations the driver ran (the plugin's worker host, counted, not replaced). */
  let driverRuns: () => number;
  beforeAll(async () => {
    host = await testHost();
    conn = await connect('test:///default', { host });
    const spy = vi.spyOn((await host.plugins.forScheme('test')).host, 'run');
    driverRuns = () => spy.mock.calls.length;
  });
  afterAll(async () => {
    await conn.close();
    await host.close();
  });

  it('asks the driver once, then answers itself with the CPU time moving on the clock', async () => {
    const before = driverRuns();
    const tStart = process.hrtime.bigint();
    const first = await conn.info('test');
    expect(driverRuns()).toBe(before + 1);
    const t0 = process.hrtime.bigint();
    await sleep(30);
    const second = await conn.info('test');
    const t1 = process.hrtime.bigint();
    expect(driverRuns()).toBe(before + 1);
    // The rest is the driver's answer; the CPU time grew by the time that passed.
    expect({ ...second, cpuTimeNs: 0n }).toEqual({ ...first, cpuTimeNs: 0n });
    expect(second.state).toBe('running');
    const grew = second.cpuTimeNs - first.cpuTimeNs;
    expect(grew).toBeGreaterThanOrEqual(30_000_000n); // the driver read its clock before t0
    // The driver read its clock after tStart, the host read it before t1.
    expect(grew).toBeLessThanOrEqual(t1 - tStart);
  });

  it('asks the driver again once the domain changed, and a stopped clock stays stopped', async () => {
    await conn.info('test');
    const before = driverRuns();
    await conn.suspend('test'); // one driver run
    const paused = await conn.info('test'); // the record changed: the driver again
    expect(driverRuns()).toBe(before + 2);
    expect(paused.state).toBe('paused');
    await sleep(20);
    const still = await conn.info('test');
    expect(driverRuns()).toBe(before + 2);
    expect(still.cpuTimeNs).toBe(paused.cpuTimeNs);
    await conn.resume('test');
    const resumed = await conn.info('test');
    expect(driverRuns()).toBe(before + 4);
    expect(resumed.state).toBe('running');
    expect(resumed.cpuTimeNs).toBeGreaterThanOrEqual(paused.cpuTimeNs);
  });

  it('follows a config change of a shut-off domain, and forgets an undefined one', async () => {
    const small = { name: 'small', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' } };
    await conn.define(small);
    let before = driverRuns();
    expect(await conn.info('small')).toMatchObject({ state: 'shut-off', memoryKib: 0n, maxMemoryKib: 64n * 1024n, cpuTimeNs: 0n });
    expect(await conn.info('small')).toMatchObject({ state: 'shut-off', memoryKib: 0n, maxMemoryKib: 64n * 1024n, cpuTimeNs: 0n });
    expect(driverRuns()).toBe(before + 1); // the second was the host's (a fixed CPU time)
    await conn.define({ ...small, memoryMiB: 128, vcpus: 2 });
    before = driverRuns();
    expect(await conn.info('small')).toMatchObject({ state: 'shut-off', maxMemoryKib: 128n * 1024n, vcpus: 2, cpuTimeNs: 0n });
    expect(driverRuns()).toBe(before + 1);
    // Undefined and defined again alike: a new domain, asked of the driver afresh.
    await conn.undefine('small');
    await expect(conn.info('small')).rejects.toThrow(/no domain named small/);
    await conn.define({ ...small, memoryMiB: 128, vcpus: 2 });
    before = driverRuns();
    await conn.info('small');
    expect(driverRuns()).toBe(before + 1);
  });

  it('answers nothing once the connection is closed', async () => {
    const other = await connect('test:///default', { host });
    await other.info('test');
    await other.info('test');
    await other.close();
    await expect(other.info('test')).rejects.toThrow(/the connection is closed/);
  });
});

describe('a process as the CPU time source', () => {
  const children: ChildProcess[] = [];
  const busy = async () => {
    const c = spawn('/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    children.push(c);
    await once(c, 'spawn');
    return c;
  };
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
  });
  const key = { config: '{}', status: { state: 'running', reason: 'booted' }, runtime: '{"pid":1}' } as const;
  const outcome = (pid: number, startTicks: bigint, cpuTimeNs = 0n): Outcome => ({
    clearRuntime: false,
    events: [],
    domains: [],
    info: { state: 'running', reason: 'booted', maxMemoryKib: 1024n, memoryKib: 1024n, vcpus: 1, cpuTimeNs } satisfies DomainInfo,
    payload: '{"pid":' + pid + '}',
    infoReuse: { tag: 'process', val: [pid, startTicks] },
  });
  const started = (pid: number) => readStat(pid)!.startTimeTicks;
  const shell = realpathSync('/bin/sh');
  async function until<T>(f: () => T | undefined, ms = 10_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error('timed out');
      await sleep(10);
    }
  }

  it('reads the CPU time of a granted process from /proc, and stops once it is gone', async () => {
    const c = await busy();
    const refused: string[] = [];
    const reuse = new InfoReuse([shell], (d, why) => refused.push(`${d}: ${why}`));
    reuse.remember('d', key, outcome(c.pid!, started(c.pid!)));
    const a = reuse.answer('d', key)!;
    expect(a.payload).toBe(`{"pid":${c.pid}}`);
    // A busy loop: its CPU time (ticks of 10 ms) moves on, read by the host each time.
    const later = await until(() => {
      const b = reuse.answer('d', key)!;
      return b.info.cpuTimeNs > a.info.cpuTimeNs ? b : undefined;
    });
    expect(later.info.cpuTimeNs).toBeLessThanOrEqual(readStat(c.pid!)!.cpuTimeNs);
    // Another request (the runtime record changed): the driver is asked.
    expect(reuse.answer('d', { ...key, runtime: '{"pid":2}' })).toBeUndefined();
    reuse.remember('d', key, outcome(c.pid!, started(c.pid!)));
    c.kill('SIGKILL');
    await once(c, 'exit');
    expect(reuse.answer('d', key)).toBeUndefined();
    expect(refused).toEqual([]);
  });

  it('never binds to a process other than the one the driver measured', async () => {
    const c = await busy();
    const refused: string[] = [];
    const reuse = new InfoReuse([shell], (d, why) => refused.push(`${d}: ${why}`));
    // Another start time: the pid's process is not the measured one (a reused pid).
    reuse.remember('d', key, outcome(c.pid!, started(c.pid!) + 1n));
    expect(reuse.answer('d', key)).toBeUndefined();
    expect(refused).toEqual([]);
  });

  it('never reads a process that runs no granted executable, nor one whose executable cannot be read', async () => {
    const c = await busy();
    const refused: string[] = [];
    const reuse = new InfoReuse(['/usr/bin/qemu-system-x86_64'], (d, why) => refused.push(`${d}: ${why}`));
    reuse.remember('d', key, outcome(c.pid!, started(c.pid!), 7n));
    reuse.remember('d', key, outcome(c.pid!, started(c.pid!), 7n));
    expect(reuse.answer('d', key)).toBeUndefined();
    // Told once, not on every call.
    expect(refused).toEqual([`d: pid ${c.pid} runs ${shell}, which is not a granted executable`]);
    reuse.remember('d', key, outcome(1, 1n));
    expect(reuse.answer('d', key)).toBeUndefined();
    expect(refused[1]).toBe('d: pid 1 is not a process the driver may name');
    // A kernel thread (its /proc/PID/stat readable, no executable): refused, as process-info refuses it.
    const kthread = readdirSync('/proc').map(Number).find((pid) => pid > 1 && readStat(pid) && !existsSync(`/proc/${pid}/exe`) && readStat(pid)!.state !== 'Z');
    expect(kthread).toBeDefined();
    reuse.remember('k', key, outcome(kthread!, started(kthread!)));
    expect(reuse.answer('k', key)).toBeUndefined();
    expect(refused[2]).toBe(`k: the executable of pid ${kthread} cannot be read`);
  });
});
