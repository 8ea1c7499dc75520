// Crash- and concurrency-safe building blocks for the stores. Deliberately free of
// imports from the rest of the package so it can be loaded on its own (the crash
// tests run it in a bare child process).
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Replace `path` with `data` so that, whatever happens (crash, SIGKILL, power loss once
 * the call has returned), readers see either the old content or the new, never a mix.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600, opts: { durable?: boolean } = {}): Promise<void> {
  const durable = opts.durable ?? true;
  const dir = dirname(path);
  // Same directory, so the rename cannot cross filesystems; pid + random so concurrent
  // writers (threads, processes) never share a temp file. The leading dot keeps it out
  // of directory listings that skip hidden files.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx', mode);
    await fh.writeFile(data);
    // Without this the rename can reach the disk before the data, leaving an empty or
    // partial file under the real name after a power loss. (Not durable: still whole after
    // any process crash; after a power loss, old, new, or unreadable, which callers accept.)
    if (durable) await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  if (durable) await fsyncDir(dir);
}

/**
 * writeFileAtomic without durability, on the calling thread: for small records that must be
 * whole after a process crash but need not survive a power loss (runtime state, markers).
 * Four syscalls instead of four thread-pool round trips.
 */
export function writeFileAtomicSync(path: string, data: string, mode = 0o600): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeFileSync(tmp, data, { mode, flag: 'wx' });
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Make a directory's entries (a rename, a new file) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (e) {
    // Some platforms and filesystems cannot fsync a directory; nothing more we can do there.
    if (!['EISDIR', 'EINVAL', 'EPERM'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    await fh.close();
  }
}

/** Parse a JSON file; undefined when it does not exist. */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return JSON.parse(text) as T;
}

/**
 * An in-process mutex that is re-entrant along one async chain: code running inside
 * `run(fn)` (and whatever fn awaits) may call `run` again without deadlocking.
 */
export class InProcessLock {
  #tail: Promise<unknown> = Promise.resolve();
  // A token rather than a plain flag: async work that fn starts but does not await
  // inherits the context; once fn is done the token is dead and that work queues normally.
  readonly #held = new AsyncLocalStorage<{ live: boolean }>();

  get held(): boolean {
    return this.#held.getStore()?.live === true;
  }

  /**
   * `fn` may end its hold early with `release()` (then work it started but did not await
   * queues like anyone else's) while the queue stays blocked until `fn` returns.
   */
  run<T>(fn: (release: () => void) => Promise<T>): Promise<T> {
    if (this.held) return fn(() => {});
    const go = async () => {
      const token = { live: true };
      try {
        return await this.#held.run(token, () => fn(() => (token.live = false)));
      } finally {
        token.live = false;
      }
    };
    const result = this.#tail.then(go);
    this.#tail = result.catch(() => {});
    return result;
  }

  /** Settles once everything queued so far has run. */
  async drain(): Promise<void> {
    await this.#tail;
  }
}

/** readJsonFile for many small files in a row, where promise overhead dominates. */
export function readJsonFileSync<T>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return JSON.parse(text) as T;
}
