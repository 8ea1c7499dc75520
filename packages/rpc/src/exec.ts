// `exec` over the wire: bytes (stdin, stdout, stderr) travel as base64 strings, not as
// arrays of numbers (what encodeValue makes of a Uint8Array). Both ends are here.
import { VirtkitError, type Connection, type ExecOptions, type ExecResult } from '@virtkit/core';
import { isObject } from './protocol.js';

/** What the daemon answers an exec with. */
interface WireExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const isBase64 = (v: unknown): v is string => typeof v === 'string' && v.length % 4 === 0 && BASE64.test(v);
const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** Client side: exec's parameters on the wire (the AbortSignal stays local). */
export function execParams(name: string, argv: string[], opts: Omit<ExecOptions, 'signal'> = {}): unknown[] {
  const o: Record<string, unknown> = {};
  if (opts.env !== undefined) o.env = opts.env;
  if (opts.cwd !== undefined) o.cwd = opts.cwd;
  if (opts.timeoutMs !== undefined) o.timeoutMs = opts.timeoutMs;
  if (opts.stdin !== undefined) o.stdin = typeof opts.stdin === 'string' ? Buffer.from(opts.stdin, 'utf8').toString('base64') : b64(opts.stdin);
  return [name, argv, o];
}

/** Client side: the daemon's answer back to an ExecResult with bytes. */
export function execResultOf(v: unknown): ExecResult {
  const r = v as WireExecResult;
  if (!isObject(v) || !isBase64(r.stdout) || !isBase64(r.stderr)) throw new VirtkitError('PROTOCOL_ERROR', 'the daemon answered exec without base64 stdout and stderr');
  return { exitCode: r.exitCode, signal: r.signal, stdout: new Uint8Array(Buffer.from(r.stdout, 'base64')), stderr: new Uint8Array(Buffer.from(r.stderr, 'base64')), truncated: r.truncated === true };
}

/** Server side: params [name, argv, {env, cwd, stdin (base64), timeoutMs}]; core checks each field. */
export async function serveExec(c: Connection, p: unknown[], call?: { readonly signal: AbortSignal }): Promise<WireExecResult> {
  const name = p[0];
  if (typeof name !== 'string') throw new VirtkitError('INVALID_ARGUMENT', 'parameter 1 (domain name) must be a string');
  const o = p[2] === undefined || p[2] === null ? {} : p[2];
  if (!isObject(o)) throw new VirtkitError('INVALID_ARGUMENT', 'parameter 3 (exec options) must be an object');
  if (o.stdin !== undefined && !isBase64(o.stdin)) throw new VirtkitError('INVALID_ARGUMENT', 'stdin must be a base64 string');
  // The command stops when the client cancels the call or its session ends.
  const opts = { env: o.env, cwd: o.cwd, timeoutMs: o.timeoutMs, signal: call?.signal, ...(o.stdin !== undefined ? { stdin: new Uint8Array(Buffer.from(o.stdin as string, 'base64')) } : {}) } as ExecOptions;
  const r = await c.exec(name, p[1] as string[], opts);
  return { exitCode: r.exitCode, signal: r.signal, stdout: b64(r.stdout), stderr: b64(r.stderr), truncated: r.truncated };
}
