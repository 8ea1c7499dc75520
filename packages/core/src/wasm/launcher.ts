// How the worker starts a checked child process: through the spawner (spawner.ts: a small
// process whose fork() is cheap), or directly when the spawner cannot run. Both report the
// same things: a background child's pid and later its exit; a run's exit and bounded output.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as C, existsSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Exit {
  code: number | null;
  signal: string | null;
}

export interface Ran extends Exit {
  stdout: Uint8Array;
  stderr: Uint8Array;
  truncated: boolean;
}

/**
 * A child's exit. `orphaned`: the spawner that started it died, so its exit can no longer be
 * seen; it may still run (a detached hypervisor) or be gone (an attached one dies with it).
 */
export type OnExit = (x: Exit & { pid: number; orphaned?: boolean }) => void;

export interface LaunchSpec {
  file: string;
  args: string[];
  /** The child's whole environment. */
  env: Record<string, string>;
  cwd?: string;
}

export interface Launcher {
  /** Starts a child and resolves with its pid once it runs; `onExit` is called when it exits. */
  background(spec: LaunchSpec & { detached: boolean; logFile?: string }, onExit: OnExit): Promise<number>;
  /** Runs a child to completion, keeping at most `max` bytes of each output; `signal` kills it. */
  run(spec: LaunchSpec & { stdin?: Uint8Array; max: number }, signal: AbortSignal): Promise<Ran>;
  close(): void;
}

export type SpawnerRequest =
  | ({ t: 'background'; id: number; detached: boolean; logFile?: string } & LaunchSpec)
  | ({ t: 'run'; id: number; stdin?: Uint8Array; max: number } & LaunchSpec)
  | { t: 'kill'; id: number };

export type SpawnerReply =
  | { t: 'ready'; pid: number }
  | { t: 'spawned'; id: number; pid: number }
  | { t: 'exit'; pid: number; code: number | null; signal: string | null }
  | ({ t: 'ran'; id: number } & Ran)
  | { t: 'failed'; id: number; message: string };

const LOG_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_APPEND | C.O_NOFOLLOW;

/** Starts children from this process (each fork copies this process's page tables). */
export class DirectLauncher implements Launcher {
  async background(spec: LaunchSpec & { detached: boolean; logFile?: string }, onExit: OnExit): Promise<number> {
    const fd = spec.logFile === undefined ? undefined : openSync(spec.logFile, LOG_FLAGS, 0o600);
    try {
      const child = spawn(spec.file, spec.args, { env: spec.env, cwd: spec.cwd, detached: spec.detached, stdio: ['ignore', fd ?? 'ignore', fd ?? 'ignore'] });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      child.once('exit', (code, signal) => onExit({ pid: child.pid!, code, signal }));
      // A detached hypervisor must outlive this host: don't keep our event loop alive for it.
      if (spec.detached) child.unref();
      return child.pid!;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /**
   * The child leads a process group of its own, and a timeout or cancel kills the whole group:
   * what it started and left in its group goes with it (lxc-attach's command inside a container
   * is its child, in its group; killing lxc-attach alone left the command running).
   */
  run(spec: LaunchSpec & { stdin?: Uint8Array; max: number }, signal: AbortSignal): Promise<Ran> {
    return new Promise((resolve, reject) => {
      const child = spawn(spec.file, spec.args, { env: spec.env, cwd: spec.cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
      const out: Buffer[] = [], err: Buffer[] = [];
      let outLen = 0, errLen = 0, truncated = false;
      const collect = (bufs: Buffer[], len: number, d: Buffer) => {
        const room = spec.max - len;
        if (room <= 0) {
          truncated = true;
          return len;
        }
        if (d.length > room) truncated = true;
        bufs.push(d.subarray(0, room));
        return len + Math.min(room, d.length);
      };
      child.stdout!.on('data', (d: Buffer) => (outLen = collect(out, outLen, d)));
      child.stderr!.on('data', (d: Buffer) => (errLen = collect(err, errLen, d)));
      child.stdin!.on('error', () => {});
      child.stdin!.end(spec.stdin ? Buffer.from(spec.stdin) : undefined);
      signal.addEventListener('abort', () => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL'); // the group is gone; the child may linger as a zombie
        }
      });
      child.once('error', reject);
      child.once('close', (code, sig) => resolve({ code, signal: sig, stdout: new Uint8Array(Buffer.concat(out)), stderr: new Uint8Array(Buffer.concat(err)), truncated }));
    });
  }

  close(): void {}
}

/** The compiled spawner next to this file (dist); absent when running from sources. */
const SPAWNER = fileURLToPath(new URL('./spawner.js', import.meta.url));

/**
 * Starts children through the spawner process. The spawner is started by the first request
 * (a plugin that never spawns costs nothing); until it is ready, and for good if it cannot
 * run or dies, children are started directly.
 */
export class SpawnerLauncher implements Launcher {
  readonly #direct = new DirectLauncher();
  #proc: ChildProcess | undefined;
  #ready = false;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve(m: SpawnerReply): void; reject(e: Error): void; onExit?: OnExit }>();
  readonly #exits = new Map<number, OnExit>();

  #tried = false;

  #start() {
    this.#tried = true;
    if (!existsSync(SPAWNER)) return;
    try {
      // No inherited execArgv (an --inspect would be shared) and no NODE_OPTIONS.
      const env = { ...process.env };
      delete env.NODE_OPTIONS;
      // Its stdio goes nowhere: it reports over IPC, and it may outlive a short command by a
      // moment, when nothing of it belongs on that command's terminal.
      this.#proc = spawn(process.execPath, ['--max-old-space-size=32', SPAWNER], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'], serialization: 'advanced', env });
    } catch {
      return;
    }
    const proc = this.#proc;
    proc.on('message', (m: SpawnerReply) => this.#onMessage(m));
    proc.once('error', () => this.#lost());
    proc.once('exit', () => this.#lost());
    // Neither the spawner nor its channel keeps this thread alive: its owner decides when to close.
    proc.unref();
    (proc.channel as { unref?(): void } | undefined)?.unref?.();
  }

  #onMessage(m: SpawnerReply) {
    if (m.t === 'ready') this.#ready = true;
    else if (m.t === 'exit') {
      const cb = this.#exits.get(m.pid);
      this.#exits.delete(m.pid);
      cb?.({ pid: m.pid, code: m.code, signal: m.signal });
    } else {
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      // Before anything else is read: the child's exit may be the very next message.
      if (m.t === 'spawned' && p?.onExit) this.#exits.set(m.pid, p.onExit);
      if (m.t === 'failed') p?.reject(new Error(m.message));
      else p?.resolve(m);
    }
  }

  /**
   * The spawner died: what it was doing fails, and its children's exits can no longer be seen:
   * each is reported `orphaned` (its owner then treats it as any process it did not start). A
   * new spawner is started by the next request, a few times at most.
   */
  #lost() {
    if (!this.#proc) return;
    this.#ready = false;
    this.#proc = undefined;
    for (const p of this.#pending.values()) p.reject(new Error('the spawner process exited'));
    this.#pending.clear();
    const orphans = [...this.#exits];
    this.#exits.clear();
    for (const [pid, cb] of orphans) cb({ pid, code: null, signal: null, orphaned: true });
    if (this.#restarts++ < 3) this.#tried = false;
  }
  #restarts = 0;

  #ask(m: SpawnerRequest & { id: number }, onExit?: OnExit): Promise<SpawnerReply> {
    return new Promise((resolve, reject) => {
      this.#pending.set(m.id, { resolve, reject, onExit });
      this.#proc!.send(m, (e: Error | null) => {
        if (e) {
          this.#pending.delete(m.id);
          reject(e);
        }
      });
    });
  }

  get usable(): boolean {
    if (!this.#tried) this.#start();
    return this.#ready && this.#proc?.connected === true;
  }

  async background(spec: LaunchSpec & { detached: boolean; logFile?: string }, onExit: OnExit): Promise<number> {
    if (!this.usable) return this.#direct.background(spec, onExit);
    const r = await this.#ask({ t: 'background', id: this.#nextId++, ...spec }, onExit);
    if (r.t !== 'spawned') throw new Error(`unexpected spawner reply ${r.t}`);
    return r.pid;
  }

  async run(spec: LaunchSpec & { stdin?: Uint8Array; max: number }, signal: AbortSignal): Promise<Ran> {
    if (!this.usable) return this.#direct.run(spec, signal);
    const id = this.#nextId++;
    const onAbort = () => this.#proc?.send({ t: 'kill', id } satisfies SpawnerRequest);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await this.#ask({ t: 'run', id, ...spec });
      if (r.t !== 'ran') throw new Error(`unexpected spawner reply ${r.t}`);
      return { code: r.code, signal: r.signal, stdout: new Uint8Array(r.stdout), stderr: new Uint8Array(r.stderr), truncated: r.truncated };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  close(): void {
    this.#tried = true;
    if (this.#proc?.connected) this.#proc.disconnect();
    this.#proc = undefined;
    this.#ready = false;
  }
}
