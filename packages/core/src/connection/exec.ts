// `exec` (world 0.2.0): run a command inside a running domain. The arguments are checked
// here, before any driver sees them, and the driver's answer is checked on the way back.
// Wire format (operation-request.args / outcome.payload): see wit/driver/driver.wit.
import { VirtkitError } from '../errors.js';

export interface ExecOptions {
  /** The command's whole environment inside the domain (names: letters, digits, '_'). */
  env?: Record<string, string>;
  /** Absolute working directory inside the domain. */
  cwd?: string;
  /** Bytes for the command's stdin (a string is sent as UTF-8), then closed. */
  stdin?: string | Uint8Array;
  /** Kill the command after this long (the driver's default otherwise). */
  timeoutMs?: number;
  /** Stops waiting (the operation fails with CANCELLED). */
  signal?: AbortSignal;
}

export interface ExecResult {
  /** The exit code, or null when a signal ended the command. */
  exitCode: number | null;
  /** The signal's name (e.g. "SIGKILL") when one ended it, else null. */
  signal: string | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  /** Output beyond the driver's bound was dropped. */
  truncated: boolean;
}

const invalid = (m: string) => new VirtkitError('INVALID_ARGUMENT', m);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const U32_MAX = 0xffff_ffff;

/** Checks exec's arguments and encodes them as the operation's JSON args. */
export function execArgs(argv: unknown, opts: unknown): Record<string, unknown> {
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw invalid('argv must be a non-empty array of strings');
  if (argv[0] === '') throw invalid('argv[0] (the command) must not be empty');
  if (opts === undefined || opts === null) return { argv };
  if (typeof opts !== 'object' || Array.isArray(opts)) throw invalid('exec options must be an object');
  const o = opts as Record<string, unknown>;
  const args: Record<string, unknown> = { argv };
  if (o.env !== undefined) {
    if (o.env === null || typeof o.env !== 'object' || Array.isArray(o.env)) throw invalid('env must be an object mapping variable names to strings');
    for (const [k, v] of Object.entries(o.env)) {
      if (!ENV_NAME.test(k)) throw invalid(`env name ${JSON.stringify(k)} is invalid: use letters, digits and '_', not starting with a digit`);
      if (typeof v !== 'string') throw invalid(`env.${k} must be a string`);
    }
    args.env = o.env;
  }
  if (o.cwd !== undefined) {
    if (typeof o.cwd !== 'string' || !o.cwd.startsWith('/')) throw invalid('cwd must be an absolute path');
    args.cwd = o.cwd;
  }
  if (o.stdin !== undefined) {
    if (typeof o.stdin === 'string') args.stdin = Buffer.from(o.stdin, 'utf8').toString('base64');
    else if (o.stdin instanceof Uint8Array) args.stdin = Buffer.from(o.stdin.buffer, o.stdin.byteOffset, o.stdin.byteLength).toString('base64');
    else throw invalid('stdin must be a string or a Uint8Array');
  }
  if (o.timeoutMs !== undefined) {
    if (typeof o.timeoutMs !== 'number' || !Number.isInteger(o.timeoutMs) || o.timeoutMs < 1 || o.timeoutMs > U32_MAX) throw invalid(`timeoutMs must be an integer from 1 to ${U32_MAX}`);
    args.timeoutMs = o.timeoutMs;
  }
  return args;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Decodes (and checks) the payload a driver's exec answered with. */
export function execResult(driver: string, payload: string | undefined): ExecResult {
  const bad = (why: string) => new VirtkitError('DRIVER_FAILED', `the ${driver} driver answered exec with ${why}`);
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(payload ?? 'null');
  } catch {
    throw bad('a payload that is not JSON');
  }
  if (p === null || typeof p !== 'object') throw bad('no payload');
  const { exitCode, signal, stdout, stderr, truncated } = p;
  if (exitCode !== null && !Number.isInteger(exitCode)) throw bad('an exitCode that is neither an integer nor null');
  if (signal !== null && typeof signal !== 'string') throw bad('a signal that is neither a string nor null');
  const bytes = (v: unknown, what: string) => {
    if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v)) throw bad(`${what} that is not base64`);
    return new Uint8Array(Buffer.from(v, 'base64'));
  };
  return { exitCode: exitCode as number | null, signal: signal as string | null, stdout: bytes(stdout, 'stdout'), stderr: bytes(stderr, 'stderr'), truncated: truncated === true };
}
