// info answered by the host from the driver's last answer (world 0.3.0 info-reuse): on
// test:///default with the real plugin-test component (monotonic and fixed CPU time), and the
// process source against real processes and /proc.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { realpathSync } from 'node:fs';
import { connect, type Connection, type Host } from '../src/index.js';
import { InfoReuse } from '../src/connection/info-reuse.js';
import type { DomainInfo, Outcome } from '../src/types.js';
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
    expect(grew).toBeGreaterThanOrEqual(30_000_000n);
    expect(grew).toBeLessThanOrEqual(t1 - t0 + 50_000_000n);
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
    await conn.define({ name: 'small', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' } });
    expect((await conn.info('small')).memoryKib).toBe(0n);
    expect((await conn.info('small')).maxMemoryKib).toBe(64n * 1024n);
    await conn.define({ name: 'small', memoryMiB: 128, vcpus: 2, os: { type: 'hvm' } });
    const before = driverRuns();
    const grown = await conn.info('small');
    expect(driverRuns()).toBe(before + 1);
    expect(grown).toMatchObject({ state: 'shut-off', maxMemoryKib: 128n * 1024n, vcpus: 2, cpuTimeNs: 0n });
    await conn.undefine('small');
    await expect(conn.info('small')).rejects.toThrow(/NO_DOMAIN|no domain named small/);
  });
});

describe('a process as the CPU time source', () => {
  const children: ChildProcess[] = [];
  const sleeper = async () => {
    const c = spawn('/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    children.push(c);
    await once(c, 'spawn');
    return c;
  };
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
  });
  const key = { config: '{}', status: { state: 'running', reason: 'booted' }, runtime: '{"pid":1}' } as const;
  const outcome = (pid: number, cpuTimeNs = 0n): Outcome => ({
    clearRuntime: false,
    events: [],
    domains: [],
    info: { state: 'running', reason: 'booted', maxMemoryKib: 1024n, memoryKib: 1024n, vcpus: 1, cpuTimeNs } satisfies DomainInfo,
    payload: '{"pid":' + pid + '}',
    infoReuse: { tag: 'process', val: pid },
  });
  const shell = realpathSync('/bin/sh');

  it('reads the CPU time of a granted process from /proc, and stops once it is gone', async () => {
    const c = await sleeper();
    const reuse = new InfoReuse([shell]);
    reuse.remember('d', key, outcome(c.pid!));
    await sleep(100);
    const a = reuse.answer('d', key);
    expect(a?.payload).toBe(`{"pid":${c.pid}}`);
    // A busy loop for 100 ms: tens of ms of CPU time, in clock ticks of 10 ms.
    expect(a!.info.cpuTimeNs).toBeGreaterThanOrEqual(20_000_000n);
    await sleep(100);
    expect(reuse.answer('d', key)!.info.cpuTimeNs).toBeGreaterThan(a!.info.cpuTimeNs);
    // Another request (the runtime record changed): the driver is asked.
    expect(reuse.answer('d', { ...key, runtime: '{"pid":2}' })).toBeUndefined();
    reuse.remember('d', key, outcome(c.pid!));
    c.kill('SIGKILL');
    await once(c, 'exit');
    expect(reuse.answer('d', key)).toBeUndefined();
  });

  it('never reads a process that runs no granted executable', async () => {
    const c = await sleeper();
    const refused: string[] = [];
    const reuse = new InfoReuse(['/usr/bin/qemu-system-x86_64'], (d, why) => refused.push(`${d}: ${why}`));
    reuse.remember('d', key, outcome(c.pid!, 7n));
    expect(reuse.answer('d', key)).toBeUndefined();
    expect(refused).toEqual([`d: pid ${c.pid} runs ${shell}, which is not a granted executable`]);
    reuse.remember('d', key, outcome(1));
    expect(reuse.answer('d', key)).toBeUndefined();
    expect(refused[1]).toBe('d: pid 1 is not a process the driver may name');
  });
});
