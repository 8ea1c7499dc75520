// Connection.exec (world 0.2.0) on test:///default, whose driver fakes a tiny command set
// (plugin-test README). Real plugin-test component in a real worker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Connection, type Host } from '../src/index.js';
import { codeOf, testHost } from './helpers.js';

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('Connection.exec on test:///default', () => {
  let host: Host;
  let conn: Connection;
  beforeAll(async () => {
    host = await testHost();
    conn = await connect('test:///default', { host });
  });
  afterAll(async () => {
    await conn.close();
    await host.close();
  });

  it('is listed among the operations the driver supports', () => {
    expect(conn.supports('exec')).toBe(true);
    expect(conn.capabilities().driver.operations).toContain('exec');
  });

  it('runs a command: exit code, stdout, stderr as bytes', async () => {
    const r = await conn.exec('test', ['echo', 'hello', 'wörld']);
    expect(r.exitCode).toBe(0);
    expect(r.signal).toBeNull();
    expect(r.stdout).toBeInstanceOf(Uint8Array);
    expect(text(r.stdout)).toBe('hello wörld\n');
    expect(r.stderr.length).toBe(0);
    expect(r.truncated).toBe(false);
    expect((await conn.exec('test', ['exit', '42'])).exitCode).toBe(42);
    expect((await conn.exec('test', ['false'])).exitCode).toBe(1);
    const missing = await conn.exec('test', ['nope', 'x']);
    expect(missing.exitCode).toBe(127);
    expect(text(missing.stderr)).toBe('nope: command not found\n');
  });

  it('passes env, cwd and stdin (binary, every byte value) through to the domain', async () => {
    expect(text((await conn.exec('test', ['env'], { env: { B: '2', A: 'one two' } })).stdout)).toBe('A=one two\nB=2\n');
    expect(text((await conn.exec('test', ['pwd'], { cwd: '/srv/app' })).stdout)).toBe('/srv/app\n');
    const bytes = Uint8Array.from({ length: 256 * 3 + 1 }, (_, i) => (i * 7) % 256);
    expect(Buffer.from((await conn.exec('test', ['cat'], { stdin: bytes })).stdout).equals(Buffer.from(bytes))).toBe(true);
    expect(text((await conn.exec('test', ['cat'], { stdin: 'é\n' })).stdout)).toBe('é\n');
  });

  it('reports a command a signal ended: signal name, no exit code; timeoutMs kills it', async () => {
    expect(await conn.exec('test', ['kill', 'SIGTERM'])).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    expect(await conn.exec('test', ['sleep', '5000'], { timeoutMs: 20 })).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
  });

  it('rejects bad arguments naming the field, before the driver runs', async () => {
    expect(await codeOf(conn.exec('test', []))).toBe('INVALID_ARGUMENT: argv must be a non-empty array of strings');
    expect(await codeOf(conn.exec('test', ['echo', 3 as never]))).toBe('INVALID_ARGUMENT: argv must be a non-empty array of strings');
    expect(await codeOf(conn.exec('test', ['echo'], { env: { 'A=B': 'x' } }))).toMatch(/^INVALID_ARGUMENT: env name "A=B" is invalid/);
    expect(await codeOf(conn.exec('test', ['echo'], { env: { A: 1 as never } }))).toBe('INVALID_ARGUMENT: env.A must be a string');
    expect(await codeOf(conn.exec('test', ['echo'], { cwd: 'relative' }))).toBe('INVALID_ARGUMENT: cwd must be an absolute path');
    expect(await codeOf(conn.exec('test', ['echo'], { timeoutMs: 0 }))).toBe('INVALID_ARGUMENT: timeoutMs must be an integer from 1 to 4294967295');
    expect(await codeOf(conn.exec('test', ['echo'], { stdin: 5 as never }))).toBe('INVALID_ARGUMENT: stdin must be a string or a Uint8Array');
    expect(await codeOf(conn.exec('bad name!', ['echo']))).toMatch(/^INVALID_ARGUMENT: domain name "bad name!" is invalid/);
    expect(await codeOf(conn.exec('ghost', ['echo']))).toMatch(/^NO_DOMAIN: no domain named ghost/);
  });

  it('is not queued behind the domain lifecycle: a suspend completes while a command runs', async () => {
    let execDone = false;
    const long = conn.exec('test', ['sleep', '1500']).then((r) => {
      execDone = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(await conn.suspend('test')).toEqual({ state: 'paused', reason: 'user' });
    expect(execDone).toBe(false);
    expect((await long).exitCode).toBe(0);
    // A paused domain runs no commands.
    expect(await codeOf(conn.exec('test', ['true']))).toBe('OPERATION_INVALID: cannot exec in domain test: it is not running (state paused)');
    await conn.resume('test');
  });

  it('refuses a domain that is not running', async () => {
    await conn.define({ name: 'idle', memoryMiB: 64, vcpus: 1, os: { type: 'hvm' } });
    expect(await codeOf(conn.exec('idle', ['true']))).toBe('OPERATION_INVALID: cannot exec in domain idle: it is not running (state shut-off)');
  });
});
