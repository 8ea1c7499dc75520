// Performs a driver's effects, after checking each against the plugin's grant. Runs in the
// plugin's worker thread, next to the component, so a step and its effect never cross
// threads. Every effect is bounded in time; channels and child handles outlive operations.
import { constants as C, readdirSync, rmdirSync, unlinkSync, type Dirent } from 'node:fs';
import { open, readFile, readdir, lstat, rm, mkdir, rename, unlink } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { VirtkitError } from '../errors.js';
import type { GrantChecker } from '../plugins/grants.js';
import type { Effect, EffectResult, EventTrigger } from '../types.js';
import { SpawnerLauncher, type Exit, type Launcher } from './launcher.js';
import { executableOf, hasExited, parseStat } from './proc.js';

type E<T extends Effect['tag']> = Extract<Effect, { tag: T }> extends { val: infer V } ? V : never;

export interface EffectContext {
  signal: AbortSignal;
  onProgress(percent: number, message: string): void;
  /** The node the operation runs for: watches report to it. */
  nodeUri: string;
}

/** Unsolicited input for a domain: the host starts handle-event for it. */
export interface WatchNotice {
  nodeUri: string;
  domain: string;
  trigger: EventTrigger;
}

export interface EffectLimits {
  /** No effect may take longer than this, whatever it asks for. */
  maxEffectMs: number;
  /** Largest message a channel accepts, in bytes. */
  maxMessageBytes: number;
  /** Largest file a driver may read in one effect. */
  maxReadBytes: number;
  /** Most Wasm linear memory a driver instance may hold (checked after every step). */
  maxMemoryBytes: number;
}

export const DEFAULT_LIMITS: EffectLimits = { maxEffectMs: 10 * 60_000, maxMessageBytes: 4 << 20, maxReadBytes: 16 << 20, maxMemoryBytes: 256 << 20 };

const SIGNALS: Record<string, NodeJS.Signals> = {
  sigterm: 'SIGTERM', sigkill: 'SIGKILL', sigint: 'SIGINT', sighup: 'SIGHUP',
  sigstop: 'SIGSTOP', sigcont: 'SIGCONT', sigusr1: 'SIGUSR1', sigusr2: 'SIGUSR2',
};

const none: EffectResult = { tag: 'none' };
/** What a cancelled operation may still do to clean up, and how long each may take. */
const CLEANUP_EFFECTS = new Set<Effect['tag']>(['signal', 'wait-process', 'process-info', 'channel-send', 'channel-receive', 'channel-close', 'file-remove', 'file-stat', 'file-read', 'clock']);
const CLEANUP_MS = 5000;
/**
 * Environment variables that make a program load code or data the driver chooses (the
 * list glibc strips for setuid programs): a driver granted one executable must not turn
 * it into any program through them.
 */
const UNSAFE_ENV = /^(LD_.*|GCONV_PATH|GETCONF_DIR|GLIBC_TUNABLES|HOSTALIASES|LOCALDOMAIN|LOCPATH|MALLOC_TRACE|NIS_PATH|NLSPATH|RESOLV_HOST_CONF|RES_OPTIONS|TMPDIR|TZDIR|NODE_OPTIONS|BASH_ENV|ENV)$/;
// USER_HZ and the page size: fixed on Linux x86_64 and aarch64 as Node cannot sysconf().
const PAGE_SIZE = 4096n;

/** Rejects with TIMEOUT after ms, or CANCELLED when the operation is cancelled. */
function bounded<T>(what: string, ms: number, ctx: EffectContext, work: (done: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  return new Promise<T>((resolve, reject) => {
    const finish = (err: VirtkitError) => {
      ac.abort(err);
      reject(err);
    };
    const timer = setTimeout(() => finish(new VirtkitError('TIMEOUT', `${what} did not finish within ${ms} ms`)), ms);
    const onAbort = () => finish(new VirtkitError('CANCELLED', `${what} cancelled`));
    if (ctx.signal.aborted) return onAbort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    work(ac.signal).then(resolve, reject).finally(() => {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
    });
  });
}

/**
 * A domain's runtime dir (a few sockets and logs) goes in a handful of syscalls on this
 * thread; Node's recursive rm would take two thread-pool hops per entry (~1-4 ms). Anything
 * else (subdirectories, many entries, an error) returns false: the caller then uses rm.
 * The path was checked by the grant; entries are unlinked, never followed.
 */
function removeSmallDirSync(path: string): boolean {
  let entries: Dirent[];
  try {
    entries = readdirSync(path, { withFileTypes: true });
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
  if (entries.length > 32 || entries.some((e) => e.isDirectory())) return false;
  const gone = (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOENT';
  try {
    for (const e of entries) {
      try {
        unlinkSync(join(path, e.name));
      } catch (x) {
        if (!gone(x)) throw x; // vanished meanwhile: QEMU unlinks its sockets as it exits
      }
    }
    rmdirSync(path);
    return true;
  } catch (e) {
    return gone(e); // anything else (a new entry, a permission) is rm's to handle or report
  }
}

const ioError = (what: string, e: unknown) =>
  e instanceof VirtkitError ? e : new VirtkitError('IO_ERROR', `${what}: ${(e as Error).message}`, { cause: e });

interface Channel {
  id: number;
  /** A notice held back while the domain had an operation running. */
  deferred?: boolean;
  closedNotified?: boolean;
  socket: Socket;
  watch?: { nodeUri: string; domain: string; events: E<'channel-receive'>['filter'] };
  queue: unknown[];
  raw: string[];
  buffer: string;
  closed?: string;
  waiters: Set<() => void>;
}

function matches(msg: unknown, filter: E<'channel-receive'>['filter']): boolean {
  if (filter.length === 0) return true;
  if (msg === null || typeof msg !== 'object') return false;
  const rec = msg as Record<string, unknown>;
  return filter.some((f) => f.field in rec && (f.equals === undefined || JSON.stringify(rec[f.field]) === f.equals || rec[f.field] === f.equals));
}

export class EffectPerformer {
  private channels = new Map<number, Channel>();
  private nextChannel: number;
  /** Processes this plugin started: their exit, seen through our own child handle. */
  private children = new Map<number, { exit?: Exit; waiters: Set<() => void> }>();
  /** Starts the children: through the spawner process (cheap forks), or directly. */
  private launcher: Launcher = new SpawnerLauncher();

  constructor(
    private grant: GrantChecker,
    private limits: EffectLimits = DEFAULT_LIMITS,
    private onWatch: (n: WatchNotice) => void = () => {},
    /** Whether an operation of this domain is running (its notices wait until it ends). */
    private busy: (domain: string) => boolean = () => false,
    channelBase = 0,
  ) {
    this.nextChannel = channelBase + 1;
  }

  private cap(ms: number): number {
    return Math.max(1, Math.min(ms, this.limits.maxEffectMs));
  }

  async perform(effect: Effect, ctx: EffectContext): Promise<EffectResult> {
    if (ctx.signal.aborted) {
      // A cancelled operation may still clean up (stop what it started, close, remove), each
      // step bounded by CLEANUP_MS; it may not start anything new or wait for nothing.
      // A program run to completion (e.g. `lxc-stop -k` for what an interrupted start began)
      // is cleanup too; starting one in the background is not.
      const cleanupRun = effect.tag === 'spawn' && effect.val.mode.tag === 'run';
      if (!CLEANUP_EFFECTS.has(effect.tag) && !cleanupRun) throw new VirtkitError('CANCELLED', `${effect.tag} refused: the operation was cancelled`);
      const cleanup = new AbortController();
      const timer = setTimeout(() => cleanup.abort(), CLEANUP_MS);
      try {
        return await this.perform(effect, { ...ctx, signal: cleanup.signal });
      } finally {
        clearTimeout(timer);
      }
    }
    switch (effect.tag) {
      case 'spawn': return this.spawn(effect.val, ctx);
      case 'signal': return this.signal(effect.val);
      case 'wait-process': return this.waitProcess(effect.val, ctx);
      case 'process-info': return this.processInfo(effect.val);
      case 'channel-open': return this.channelOpen(effect.val, ctx);
      case 'channel-send': return this.channelSend(effect.val);
      case 'channel-receive': return this.channelReceive(effect.val, ctx);
      case 'channel-close': return this.channelClose(effect.val);
      case 'file-read': return this.fileRead(effect.val);
      case 'file-write': return this.fileWrite(effect.val);
      case 'file-stat': return this.fileStat(effect.val);
      case 'file-list': return this.fileList(effect.val);
      case 'file-remove': return this.fileRemove(effect.val);
      case 'make-dir': return this.makeDir(effect.val);
      case 'sleep':
        return bounded('sleep', this.cap(effect.val + 1000), ctx, (sig) => new Promise((r) => {
          const t = setTimeout(r, effect.val);
          sig.addEventListener('abort', () => clearTimeout(t));
        })).then(() => none);
      case 'clock':
        return { tag: 'clock', val: { wallMs: BigInt(Date.now()), monotonicNs: process.hrtime.bigint() } };
      case 'progress':
        ctx.onProgress(effect.val.percent, effect.val.message);
        return none;
      default:
        throw new VirtkitError('NO_SUPPORT', `unknown effect ${(effect as { tag: string }).tag}`);
    }
  }

  private async spawn(req: E<'spawn'>, ctx: EffectContext): Promise<EffectResult> {
    // Run exactly what was checked: the resolved executable and cwd, not the paths as asked.
    const executable = this.grant.executable(req.executable, req.args);
    const cwd = req.cwd === undefined ? undefined : this.grant.read(req.cwd);
    const unsafe = req.env.filter((v) => UNSAFE_ENV.test(v.name) || v.name.includes('=') || v.name === '');
    if (unsafe.length) throw new VirtkitError('GRANT_DENIED', `plugin ${this.grant.plugin} may not set ${unsafe.map((v) => JSON.stringify(v.name)).join(', ')} in a child's environment`);
    const env = Object.fromEntries(req.env.map((v) => [v.name, v.value]));
    if (req.mode.tag === 'background') {
      const opts = req.mode.val;
      const logFile = opts.logFile === undefined ? undefined : this.grant.write(opts.logFile);
      const rec = { exit: undefined as Exit | undefined, waiters: new Set<() => void>() };
      const watch = opts.watchDomain;
      let pid: number;
      try {
        pid = await this.launcher.background({ file: executable, args: req.args, env, cwd, detached: opts.detached, logFile }, (x) => {
          if (x.orphaned) return this.orphaned(x.pid, watch, ctx.nodeUri);
          rec.exit = { code: x.code, signal: x.signal };
          for (const w of rec.waiters) w();
          if (watch) {
            const status = { code: x.code ?? undefined, signal: x.signal ?? undefined, stdout: new Uint8Array(), stderr: new Uint8Array(), truncated: false };
            this.onWatch({ nodeUri: ctx.nodeUri, domain: watch, trigger: { tag: 'process-exited', val: [x.pid, status] } });
          }
        });
      } catch (e) {
        throw ioError(`spawn ${req.executable}`, e);
      }
      // An exit reported before we knew the pid (a child that died at once) was recorded in rec.
      this.children.set(pid, rec);
      return { tag: 'spawned', val: pid };
    }
    const run = req.mode.val;
    const max = Math.max(0, run.maxOutputBytes);
    return bounded(`running ${req.executable}`, this.cap(run.timeoutMs), ctx, async (sig) => {
      try {
        const r = await this.launcher.run({ file: executable, args: req.args, env, cwd, stdin: run.stdin ? new Uint8Array(run.stdin) : undefined, max }, sig);
        return { tag: 'exited', val: { code: r.code ?? undefined, signal: r.signal ?? undefined, stdout: r.stdout, stderr: r.stderr, truncated: r.truncated } };
      } catch (e) {
        throw ioError(`spawn ${req.executable}`, e);
      }
    });
  }

  /**
   * A child whose exit can no longer be seen (its spawner died): from now on it is checked as
   * any process (its executable against the grant; waits poll /proc). If it was watched and is
   * gone, or goes within a moment (an attached child dies with its spawner), its domain hears of
   * it as an exit by SIGKILL; a detached one that runs on is watched through its channels.
   */
  private orphaned(pid: number, watch: string | undefined, nodeUri: string) {
    const rec = this.children.get(pid);
    this.children.delete(pid);
    for (const w of rec?.waiters ?? []) w();
    if (!watch) return;
    const notify = () => this.onWatch({ nodeUri, domain: watch, trigger: { tag: 'process-exited', val: [pid, { signal: 'SIGKILL', stdout: new Uint8Array(), stderr: new Uint8Array(), truncated: false }] } });
    if (hasExited(pid)) return notify();
    setTimeout(() => hasExited(pid) && notify(), 250).unref();
  }

  /** A pid is ours if we started it, or if it runs one of the granted executables. */
  private async checkPid(pid: number, verb: string): Promise<void> {
    if (!Number.isInteger(pid) || pid <= 1) throw new VirtkitError('GRANT_DENIED', `plugin ${this.grant.plugin} may not ${verb} pid ${pid}`);
    const own = this.children.get(pid);
    // Our child while it runs; once it exited its pid may belong to anyone: check as any pid.
    if (own && !own.exit) return;
    const exe = executableOf(pid);
    if (exe === undefined) throw new VirtkitError('NOT_FOUND', `no process ${pid} (or its executable cannot be read)`);
    if (!this.grant.grants.executables.includes(exe)) {
      throw new VirtkitError('GRANT_DENIED', `plugin ${this.grant.plugin} may not ${verb} pid ${pid}: it runs ${exe}, which is not a granted executable`);
    }
  }

  private async signal(req: E<'signal'>): Promise<EffectResult> {
    await this.checkPid(req.pid, 'signal');
    try {
      process.kill(req.pid, SIGNALS[req.signal]);
    } catch (e) {
      throw new VirtkitError((e as NodeJS.ErrnoException).code === 'ESRCH' ? 'NOT_FOUND' : 'IO_ERROR', `signal ${req.signal} to ${req.pid}: ${(e as Error).message}`);
    }
    return none;
  }

  private async waitProcess(req: E<'wait-process'>, ctx: EffectContext): Promise<EffectResult> {
    const exited = (x: Exit): EffectResult => ({ tag: 'exited', val: { code: x.code ?? undefined, signal: x.signal ?? undefined, stdout: new Uint8Array(), stderr: new Uint8Array(), truncated: false } });
    const own = this.children.get(req.pid);
    if (own) {
      if (own.exit) return exited(own.exit);
      return bounded(`waiting for pid ${req.pid}`, this.cap(req.timeoutMs), ctx, (sig) => new Promise((resolve) => {
        // Woken by the exit, or because the child was orphaned: then wait as for any process.
        const w = () => resolve(own.exit ? exited(own.exit) : this.waitProcess(req, { ...ctx, signal: sig }));
        own.waiters.add(w);
        sig.addEventListener('abort', () => own.waiters.delete(w));
      }));
    }
    await this.checkPid(req.pid, 'wait for').catch((e) => { if (!VirtkitError.is(e, 'NOT_FOUND')) throw e; });
    // Not our child (we restarted since): poll /proc. A zombie has exited already; PID 1
    // here reaps orphans only every few seconds, so don't wait for the pid to vanish.
    return bounded(`waiting for pid ${req.pid}`, this.cap(req.timeoutMs), ctx, async (sig) => {
      for (;;) {
        if (hasExited(req.pid)) return exited({ code: null, signal: null });
        if (sig.aborted) throw sig.reason;
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  }

  private async processInfo(pid: number): Promise<EffectResult> {
    await this.checkPid(pid, 'inspect');
    let stat: string, statm: string, cmdline: string;
    try {
      [stat, statm, cmdline] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/statm`, 'utf8'), readFile(`/proc/${pid}/cmdline`, 'utf8')]);
    } catch {
      throw new VirtkitError('NOT_FOUND', `no process ${pid}`);
    }
    const { state, cpuTimeNs, startTimeTicks } = parseStat(stat);
    return {
      tag: 'process',
      val: {
        state,
        cpuTimeNs,
        rssBytes: BigInt(statm.split(' ')[1]!) * PAGE_SIZE,
        startTimeTicks,
        argv: cmdline.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1),
      },
    };
  }

  private async channelOpen(req: E<'channel-open'>, ctx: EffectContext): Promise<EffectResult> {
    const path = this.grant.socket(req.path);
    const socket = await bounded(`connecting to ${req.path}`, this.cap(req.timeoutMs), ctx, (sig) => new Promise<Socket>((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(s));
      s.once('error', (e) => reject(ioError(`connect ${req.path}`, e)));
      sig.addEventListener('abort', () => s.destroy());
    }));
    const id = this.nextChannel++;
    const ch: Channel = { id, socket, queue: [], raw: [], buffer: '', waiters: new Set() };
    if (req.watch) ch.watch = { nodeUri: ctx.nodeUri, domain: req.watch.domain, events: req.watch.events };
    const wake = () => { for (const w of [...ch.waiters]) w(); };
    const notify = () => this.notify(ch);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      ch.buffer += d;
      if (ch.buffer.length > this.limits.maxMessageBytes && !ch.buffer.includes('\n')) {
        ch.closed = `a message exceeded ${this.limits.maxMessageBytes} bytes`;
        socket.destroy();
      }
      let nl: number;
      while ((nl = ch.buffer.indexOf('\n')) >= 0) {
        const line = ch.buffer.slice(0, nl).trim();
        ch.buffer = ch.buffer.slice(nl + 1);
        if (!line) continue;
        try {
          ch.queue.push(JSON.parse(line));
          ch.raw.push(line);
        } catch {
          ch.closed = `peer sent a line that is not JSON: ${line.slice(0, 80)}`;
          socket.destroy();
        }
      }
      wake();
      notify();
    });
    socket.on('error', (e) => { ch.closed ??= e.message; wake(); });
    socket.on('close', () => { ch.closed ??= 'peer closed the channel'; wake(); if (this.channels.has(id)) notify(); });
    this.channels.set(id, ch);
    return { tag: 'channel', val: id };
  }

  /**
   * Unsolicited input on a watched channel: what is left after the waiters took theirs
   * and matches the watch. While an operation of that domain runs, it may still take it:
   * hold the notice until the operation ends (flush), so no handle-event runs for nothing.
   */
  private notify(ch: Channel): void {
    const w = ch.watch;
    if (!w) return;
    if (this.busy(w.domain)) {
      ch.deferred = true;
      return;
    }
    ch.deferred = false;
    if (ch.closed && !ch.closedNotified) {
      ch.closedNotified = true;
      this.onWatch({ nodeUri: w.nodeUri, domain: w.domain, trigger: { tag: 'channel-closed', val: [ch.id, ch.closed] } });
    } else if (!ch.closed && w.events.length > 0 && ch.queue.some((m) => matches(m, w.events))) {
      this.onWatch({ nodeUri: w.nodeUri, domain: w.domain, trigger: { tag: 'channel-message', val: ch.id } });
    }
  }

  /** The domain's operation ended: deliver what its channels held back meanwhile. */
  flush(domain: string): void {
    for (const ch of this.channels.values()) if (ch.deferred && ch.watch?.domain === domain) this.notify(ch);
  }

  private channel(id: number): Channel {
    const ch = this.channels.get(id);
    if (!ch) throw new VirtkitError('NOT_FOUND', `no open channel ${id}`);
    return ch;
  }

  private async channelSend(req: E<'channel-send'>): Promise<EffectResult> {
    const ch = this.channel(req.channel);
    if (ch.closed) throw new VirtkitError('IO_ERROR', `channel ${req.channel} is closed: ${ch.closed}`);
    if (req.message.includes('\n')) throw new VirtkitError('INVALID_ARGUMENT', 'a json-lines message must not contain a newline');
    await new Promise<void>((resolve, reject) => ch.socket.write(req.message + '\n', (e) => (e ? reject(ioError('send', e)) : resolve())));
    return none;
  }

  private channelReceive(req: E<'channel-receive'>, ctx: EffectContext): Promise<EffectResult> {
    const ch = this.channel(req.channel);
    const take = (): EffectResult | undefined => {
      const i = ch.queue.findIndex((m) => matches(m, req.filter));
      if (i < 0) return undefined;
      ch.queue.splice(i, 1);
      return { tag: 'message', val: ch.raw.splice(i, 1)[0]! };
    };
    const now = take();
    if (now) return Promise.resolve(now);
    // A poll (timeout 0) answers at once: a timer, however short, costs a millisecond or more.
    if (req.timeoutMs === 0) {
      return Promise.reject(ch.closed ? new VirtkitError('IO_ERROR', `channel ${req.channel} closed: ${ch.closed}`) : new VirtkitError('TIMEOUT', `nothing matching is queued on channel ${req.channel}`));
    }
    return bounded(`receiving on channel ${req.channel}`, this.cap(req.timeoutMs), ctx, (sig) => new Promise((resolve, reject) => {
      const w = () => {
        const m = take();
        if (m) { ch.waiters.delete(w); resolve(m); } else if (ch.closed) { ch.waiters.delete(w); reject(new VirtkitError('IO_ERROR', `channel ${req.channel} closed: ${ch.closed}`)); }
      };
      ch.waiters.add(w);
      sig.addEventListener('abort', () => ch.waiters.delete(w));
      w();
    }));
  }

  private async channelClose(id: number): Promise<EffectResult> {
    const ch = this.channels.get(id);
    if (ch) {
      ch.socket.destroy();
      this.channels.delete(id);
    }
    return none;
  }

  private async fileRead(req: E<'file-read'>): Promise<EffectResult> {
    const path = this.grant.read(req.path);
    const max = Math.min(req.maxBytes, this.limits.maxReadBytes);
    try {
      // O_NOFOLLOW: the checked path is the opened path, even if a symlink appears meanwhile.
      // O_NONBLOCK: a FIFO planted under a granted path must not hang a libuv thread.
      const fh = await open(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        if (!(await fh.stat()).isFile()) throw new VirtkitError('INVALID_ARGUMENT', `${req.path} is not a regular file`);
        const buf = Buffer.alloc(max);
        let n = 0;
        while (n < max) {
          const { bytesRead } = await fh.read(buf, n, max - n, null);
          if (bytesRead === 0) break;
          n += bytesRead;
        }
        return { tag: 'data', val: new Uint8Array(buf.subarray(0, n)) };
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw (e as NodeJS.ErrnoException).code === 'ENOENT' ? new VirtkitError('NOT_FOUND', `no file ${req.path}`) : ioError(`read ${req.path}`, e);
    }
  }

  private async fileWrite(req: E<'file-write'>): Promise<EffectResult> {
    const path = this.grant.write(req.path);
    const target = req.atomic ? join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`) : path;
    try {
      const flags = C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_NOFOLLOW;
      const fh = await open(target, flags, req.mode & 0o777);
      try {
        await fh.writeFile(req.data);
        if (req.atomic) await fh.sync();
      } finally {
        await fh.close();
      }
      if (req.atomic) {
        await rename(target, path);
        const dh = await open(dirname(path), C.O_RDONLY);
        await dh.sync().finally(() => dh.close());
      }
      return none;
    } catch (e) {
      if (req.atomic) await unlink(target).catch(() => {});
      throw ioError(`write ${req.path}`, e);
    }
  }

  private async fileStat(p: string): Promise<EffectResult> {
    const path = this.grant.read(p);
    try {
      const s = await lstat(path);
      const kind = s.isFile() ? 'file' : s.isDirectory() ? 'directory' : s.isSymbolicLink() ? 'symlink' : s.isSocket() ? 'socket' : 'other';
      return { tag: 'stat', val: { kind, size: BigInt(s.size), mode: s.mode & 0o7777, mtimeMs: BigInt(Math.floor(s.mtimeMs)) } };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { tag: 'stat', val: undefined };
      throw ioError(`stat ${p}`, e);
    }
  }

  private async fileList(p: string): Promise<EffectResult> {
    const path = this.grant.read(p);
    try {
      const entries = await readdir(path, { withFileTypes: true });
      return {
        tag: 'entries',
        val: entries.map((d) => ({ name: d.name, kind: d.isFile() ? 'file' : d.isDirectory() ? 'directory' : d.isSymbolicLink() ? 'symlink' : d.isSocket() ? 'socket' : 'other' })),
      };
    } catch (e) {
      throw (e as NodeJS.ErrnoException).code === 'ENOENT' ? new VirtkitError('NOT_FOUND', `no directory ${p}`) : ioError(`list ${p}`, e);
    }
  }

  private async fileRemove(req: E<'file-remove'>): Promise<EffectResult> {
    const path = this.grant.write(req.path);
    if (this.grant.grants.write.includes(path)) throw new VirtkitError('GRANT_DENIED', `plugin ${this.grant.plugin} may not remove its granted directory ${req.path} itself`);
    if (req.recursive && removeSmallDirSync(path)) return none;
    await rm(path, { recursive: req.recursive, force: true }).catch((e) => { throw ioError(`remove ${req.path}`, e); });
    return none;
  }

  private async makeDir(req: E<'make-dir'>): Promise<EffectResult> {
    const path = this.grant.write(req.path);
    await mkdir(path, { recursive: req.recursive, mode: req.mode & 0o777 }).catch((e) => {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`mkdir ${req.path}`, e);
    });
    return none;
  }

  close(): void {
    for (const ch of this.channels.values()) ch.socket.destroy();
    this.channels.clear();
    this.launcher.close();
  }
}
