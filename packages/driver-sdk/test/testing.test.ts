// Driver logic runs in-process through the testing harness: the plugin-test driver,
// with effects answered by the test.
import { describe, expect, it } from 'vitest';
import { runOperation, OperationFailed } from '@virtkit/driver-sdk/testing';
import { driver } from '../../plugin-test/src/driver.js';

const clock = (ns: bigint) => ({ tag: 'clock', val: { wallMs: 1000n, monotonicNs: ns } });
const config = JSON.stringify({ name: 'd', memoryMiB: 64, vcpus: 2, os: { type: 'hvm' } });

describe('driver-sdk testing harness', () => {
  it('drives an operation step by step, effects answered by the test', () => {
    const effects: string[] = [];
    const out = runOperation(driver, { kind: 'start', domain: 'd', config }, (e) => {
      effects.push(e.tag);
      return clock(5n);
    });
    expect(effects).toEqual(['clock']);
    expect(out.status).toEqual({ state: 'running', reason: 'booted' });
    expect(JSON.parse(out.runtime!)).toEqual({ bootedAtMs: 1000, cpuNs: 0, since: 5 });
  });

  it('computes CPU time from the clock the host reports', () => {
    const runtime = JSON.stringify({ bootedAtMs: 0, cpuNs: 100, since: 1000 });
    const out = runOperation(driver, { kind: 'info', domain: 'd', config, runtime, status: { state: 'running', reason: 'booted' } }, () => clock(1500n));
    expect(out.info).toMatchObject({ state: 'running', vcpus: 2, cpuTimeNs: 600 });
  });

  it('reports a failed effect the driver does not handle as the operation failing', () => {
    expect(() => runOperation(driver, { kind: 'start', domain: 'd', config }, () => { throw { code: 'grant-denied', message: 'no clock for you' }; }))
      .toThrow(new OperationFailed('grant-denied', 'no clock for you'));
  });

  it('answers no-support for an operation the driver lacks', () => {
    expect(() => runOperation(driver, { kind: 'console' }, () => null)).toThrow(/^no-support: test does not support console/);
  });
});
