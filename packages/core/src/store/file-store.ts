import { mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { closeSync, existsSync, fstatSync, fsync, openSync, read, readFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VirtkitError } from '../errors.js';
import type { DomainEvent, DomainStatus, StoredDomain } from '../types.js';
import { fsyncDir, InProcessLock, readJsonFile, readJsonFileSync, writeFileAtomic, writeFileAtomicSync } from './atomic.js';
import { byName, JOURNAL_KEEP_EVENTS, JOURNAL_MAX_EVENTS, noDomain } from './memory-store.js';
import type { StateStore } from './store.js';

/** What we last learned about the journal, valid while its identity and size are unchanged. */
interface JournalScan {
  ino: number;
  size: number;
  mtimeMs: number;
  /** Bytes up to and including the last newline; less than size when the tail is torn. */
  cleanEnd: number;
  lines: number;
  lastSeq: number;
}

/** Seqs reserved per durable write of events.seq. */
const SEQ_BLOCK = 4096;

/** This boot of the machine (Linux); '' elsewhere. */
const BOOT_ID = (() => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
})();

const NO_JOURNAL: JournalScan = { ino: 0, size: 0, mtimeMs: 0, cleanEnd: 0, lines: 0, lastSeq: 0 };

/** What domains/NAME.state holds. */
interface RunState {
  status: DomainStatus;
  runtime?: string;
  liveConfig?: Record<string, unknown>;
  /** An operation in flight (advisory: who is starting what right now). */
  pending?: StoredDomain['pending'];
}

/**
 * The newest whole record of a state file. Records are appended, each after a newline; a
 * record cut short (a writer killed mid-append) does not parse, so the one before it counts.
 * Nothing readable (a power loss tore it): undefined, i.e. shut off, which is then the truth.
 */
function readStateSync(path: string): RunState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  for (let end = text.length; end > 0; ) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const line = text.slice(start, end).trim();
    end = start - 1;
    if (!line) continue;
    try {
      const s = JSON.parse(line) as RunState;
      if (typeof s?.status?.state === 'string') return s;
    } catch {
      // cut short: look further back
    }
  }
  return undefined;
}

/** writeSync until every byte is written (a short write would tear the line). */
function writeAllSync(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}

/** A state file is rewritten (one atomic rename) with its newest record past this size. */
const STATE_FILE_MAX_BYTES = 32 * 1024;

/**
 * Appends a record to a state file: no new file and no rename on the hot path, which on some
 * disks (ext4 with `discard`, here) cost 1-3 ms each; a rewrite only once it has grown.
 */
function appendStateSync(path: string, state: RunState): void {
  const record = '\n' + JSON.stringify(state);
  const fd = openSync(path, 'a', 0o600);
  let size: number;
  try {
    size = fstatSync(fd).size;
    if (size + Buffer.byteLength(record) <= STATE_FILE_MAX_BYTES) return writeAllSync(fd, record);
  } finally {
    closeSync(fd);
  }
  writeFileAtomicSync(path, record);
}

const LOCK_OPTIONS = {
  // A holder that died (SIGKILL, power loss) stops refreshing the lock; after this long
  // others may take it over (2 s is proper-lockfile's minimum: a killed CLI must not make
  // the next command wait long). Writers hold it for milliseconds.
  stale: 2_000,
  // Long holders touch the lock this often, so they never look stale while alive.
  update: 1_000,
  // Waiters back off up to 0.5 s between tries, for well over `stale` in total, so a
  // dead holder's lock is always recovered rather than reported as busy.
  retries: { retries: 60, factor: 1.5, minTimeout: 10, maxTimeout: 500, randomize: true },
};

/**
 * Durable store for real nodes. Layout under dir:
 *   domains/<name>.json  one StoredDomain per file, replaced by one atomic rename
 *   domains/<name>.state its runtime state (and a marker of an operation in flight), as
 *                        appended records: the newest whole one counts
 *   uuids/<uuid>         the name of the domain with that uuid
 *   events.jsonl         append-only journal, one event per line (see appendEvent)
 *   events.seq           the highest seq the journal may hold: {"boot", "upTo"}, fsynced
 *   .lock                proper-lockfile's lock, held by every writer (any process)
 * Nothing is cached but the journal's shape, so several processes can share a dir.
 */
export class FileStore implements StateStore {
  readonly #dir: string;
  readonly #domains: string;
  /** uuids/<uuid> holds the name of the domain with that uuid: a define checks one file, not all. */
  readonly #uuids: string;
  readonly #journal: string;
  readonly #seqFile: string;
  readonly #local = new InProcessLock();
  #scan: JournalScan | undefined;
  #closed = false;

  private constructor(dir: string) {
    this.#dir = dir;
    this.#domains = join(dir, 'domains');
    this.#uuids = join(dir, 'uuids');
    this.#journal = join(dir, 'events.jsonl');
    this.#seqFile = join(dir, 'events.seq');
  }

  static async open(dir: string): Promise<FileStore> {
    const store = new FileStore(resolve(dir));
    await mkdir(store.#domains, { recursive: true, mode: 0o700 });
    await mkdir(store.#uuids, { recursive: true, mode: 0o700 });
    await store.withLock(() => store.#recover());
    return store;
  }

  /** Undo what a writer that crashed mid-operation may have left. */
  async #recover(): Promise<void> {
    await this.#cleanJournal();
    // Every writer of these temp files holds the lock, so any we see now are orphans.
    for (const dir of [this.#dir, this.#domains]) {
      for (const f of await readdir(dir)) {
        if (f.startsWith('.') && f.endsWith('.tmp')) await rm(join(dir, f), { force: true });
      }
    }
  }

  async listDomains(): Promise<StoredDomain[]> {
    const files = (await readdir(this.#domains)).filter((f) => f.endsWith('.json') && !f.startsWith('.'));
    // Small files read one by one synchronously: ~7x faster than a thousand promises
    // queued on libuv's four threads (bench/kvm.mjs: 1000 domains, 10 ms vs 75 ms).
    const all: StoredDomain[] = [];
    for (const f of files) {
      const d = readJsonFileSync<StoredDomain>(join(this.#domains, f));
      // A domain removed between readdir and read is simply gone.
      if (!d) continue;
      all.push(this.#merge(d, readStateSync(this.#stateFile(d.name))));
    }
    return all.sort(byName);
  }

  /** Every read is a fresh object here. */
  peekDomain(name: string): Promise<Readonly<StoredDomain> | undefined> {
    return this.getDomain(name);
  }

  async getDomain(name: string): Promise<StoredDomain | undefined> {
    // Three small files read on this thread: thread-pool round trips would cost more than the reads.
    const d = readJsonFileSync<StoredDomain>(this.#file(name));
    if (!d) return undefined;
    return this.#merge(d, readStateSync(this.#stateFile(name)));
  }

  /** The durable record, its runtime state (default: shut off), and a pending marker. */
  #merge(d: StoredDomain, state: RunState | undefined): StoredDomain {
    const pending = state?.pending;
    const { status: _s, runtime: _r, liveConfig: _l, pending: _p, ...durable } = d;
    return {
      ...durable,
      status: state?.status ?? { state: 'shut-off', reason: 'unknown' },
      ...(state?.runtime !== undefined ? { runtime: state.runtime } : {}),
      ...(state?.liveConfig !== undefined ? { liveConfig: state.liveConfig } : {}),
      ...(pending ? { pending } : {}),
    };
  }

  /**
   * domains/NAME.state: status, runtime record, live config, as records appended to the
   * file (the newest whole one counts: old or new after any crash), not fsynced: it describes
   * running hypervisor processes, which a power loss ends anyway; unreadable after one, it
   * reads as shut off. Keeping it apart spares every lifecycle operation the durable write
   * the config gets.
   */
  #stateFile(name: string): string {
    return this.#file(name).replace(/\.json$/, '.state');
  }

  async putConfig(name: string, config: Record<string, unknown>): Promise<void> {
    const file = this.#file(name);
    await this.withLock(async () => {
      const old = await readJsonFile<StoredDomain>(file);
      await this.#write(file, { ...old, name, config } as StoredDomain);
      // The index follows the record: a stale entry (a crash in between) is checked on read.
      if (typeof config.uuid === 'string') await writeFile(this.#uuidFile(config.uuid), name, { mode: 0o600 });
      if (typeof old?.config.uuid === 'string' && old.config.uuid !== config.uuid) await rm(this.#uuidFile(old.config.uuid), { force: true });
    });
  }

  async putRuntime(name: string, status: DomainStatus, runtime: string | undefined, liveConfig?: Record<string, unknown>): Promise<void> {
    const file = this.#file(name);
    await this.withLock(async () => {
      if (!existsSync(file)) throw noDomain(name);
      const state: RunState = { status, ...(runtime === undefined ? {} : { runtime }), ...(liveConfig === undefined ? {} : { liveConfig }) };
      appendStateSync(this.#stateFile(name), state);
    });
  }

  /**
   * Marks (or clears) an operation in flight: a record appended to the state file with the
   * current state, so no file is made or removed for it. Not fsynced: after a power loss
   * nothing is in flight anyway. The next putRuntime's record has no marker: it clears it.
   */
  async putPending(name: string, pending: StoredDomain['pending']): Promise<void> {
    const file = this.#file(name);
    await this.withLock(async () => {
      if (!existsSync(file)) throw noDomain(name);
      const { pending: _old, ...state } = readStateSync(this.#stateFile(name)) ?? { status: { state: 'shut-off', reason: 'unknown' } as DomainStatus };
      appendStateSync(this.#stateFile(name), pending ? { ...state, pending } : state);
    });
  }

  async putAutostart(name: string, on: boolean): Promise<void> {
    const file = this.#file(name);
    await this.withLock(async () => {
      const old = await readJsonFile<StoredDomain>(file);
      if (!old) throw noDomain(name);
      const { autostart: _a, ...rest } = old;
      await this.#write(file, on ? { ...rest, autostart: true } : rest);
    });
  }

  async removeDomain(name: string): Promise<void> {
    const file = this.#file(name);
    await this.withLock(async () => {
      const old = await readJsonFile<StoredDomain>(file);
      await rm(file, { force: true });
      await fsyncDir(this.#domains);
      await rm(this.#stateFile(name), { force: true });
      if (typeof old?.config.uuid === 'string') await rm(this.#uuidFile(old.config.uuid), { force: true });
    });
  }

  async findByUuid(uuid: string): Promise<StoredDomain | undefined> {
    let name: string;
    try {
      name = (await readFile(this.#uuidFile(uuid), 'utf8')).trim();
    } catch {
      return undefined;
    }
    const d = await this.getDomain(name).catch(() => undefined);
    return d?.config.uuid === uuid ? d : undefined;
  }

  #uuidFile(uuid: string): string {
    if (!/^[0-9A-Fa-f-]{1,64}$/.test(uuid)) throw new VirtkitError('INVALID_ARGUMENT', `uuid ${JSON.stringify(uuid)} is not a uuid`);
    return join(this.#uuids, uuid.toLowerCase());
  }

  appendEvent(event: Omit<DomainEvent, 'seq'>): Promise<DomainEvent> {
    return this.withLock(async () => {
      const j = await this.#cleanJournal();
      // Explicit fields: nothing else a caller's object carries ends up on disk.
      const stored: DomainEvent = { seq: await this.#nextSeq(j.lastSeq), time: event.time, domain: event.domain, kind: event.kind, reason: event.reason, ...(event.detail ? { detail: event.detail } : {}) };
      // One short line on this thread (the fsync, where there is one, in the thread pool).
      const fd = openSync(this.#journal, 'a', 0o600);
      let st;
      try {
        writeAllSync(fd, JSON.stringify(stored) + '\n');
        if (!BOOT_ID) await new Promise<void>((res, rej) => fsync(fd, (e) => (e ? rej(e) : res())));
        st = fstatSync(fd);
      } finally {
        closeSync(fd);
      }
      if (j.ino === 0) await fsyncDir(this.#dir); // the journal was just created
      this.#scan = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, cleanEnd: st.size, lines: j.lines + 1, lastSeq: stored.seq };
      if (this.#scan.lines > JOURNAL_MAX_EVENTS) await this.#compact();
      return stored;
    });
  }

  /**
   * The seq for the next event. The journal is appended through the page cache (no fsync per
   * event: it was most of a lifecycle call's bookkeeping), so a power loss may drop its last
   * lines; a process crash cannot. A seq must never be handed out twice, though: a client
   * that saw N resumes with since=N. So seqs are reserved in blocks, durably, with the boot
   * they were reserved in; after a reboot the next seq starts above the whole last block,
   * whatever the journal kept. Without a boot id (not Linux) every append is fsynced instead.
   * Caller holds the lock.
   */
  async #nextSeq(lastSeq: number): Promise<number> {
    let next = lastSeq + 1;
    if (!BOOT_ID) return next;
    let r: { boot?: unknown; upTo?: unknown } | undefined;
    let unreadable = false;
    try {
      r = readJsonFileSync(this.#seqFile);
    } catch {
      unreadable = true;
    }
    // Written atomically, so unreadable means damage: what it reserved is unknown, so the
    // next seq jumps far past anything it could have reserved.
    const upTo = unreadable ? lastSeq + 2 ** 32 : typeof r?.upTo === 'number' && Number.isSafeInteger(r.upTo) ? r.upTo : 0;
    const sameBoot = r?.boot === BOOT_ID;
    if (!sameBoot) next = Math.max(next, upTo + 1);
    if (!sameBoot || next > upTo) {
      await writeFileAtomic(this.#seqFile, JSON.stringify({ boot: BOOT_ID, upTo: next + SEQ_BLOCK - 1 }) + '\n');
    }
    return next;
  }

  async eventsSince(after: number): Promise<DomainEvent[]> {
    let text: string;
    try {
      text = await readFile(this.#journal, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    return parseJournal(text).filter((e) => e.seq > after);
  }

  async lastSeq(): Promise<number> {
    return (await this.#readJournal()).lastSeq;
  }

  withLock<T>(fn: () => Promise<T>): Promise<T> {
    // Re-entry must skip the file lock too: proper-lockfile would see it held and wait.
    if (this.#local.held) return fn();
    let settle!: { resolve(v: T): void; reject(e: unknown): void };
    const outcome = new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
    void this.#local.run(async (endHold) => {
      if (this.#closed) throw new VirtkitError('OPERATION_INVALID', 'state store is closed');
      let lost: Error | undefined;
      let release: () => unknown;
      try {
        // Locking the dir itself; the lock lives at <dir>/.lock (a directory, made atomically by mkdir).
        // Loaded on first use: only file-backed nodes need it, and start-up time counts.
        const { default: lockfile } = await import('proper-lockfile');
        const opts = { ...LOCK_OPTIONS, lockfilePath: join(this.#dir, '.lock'), onCompromised: (e: Error) => (lost = e) };
        try {
          // Free (the usual case): taken with a few syscalls on this thread.
          release = lockfile.lockSync(this.#dir, { ...opts, retries: 0 });
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
          release = await lockfile.lock(this.#dir, opts);
        }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
        throw new VirtkitError('TIMEOUT', `state store ${this.#dir} stayed locked by another process`, { cause: e });
      }
      try {
        const result = await fn();
        // Another process may have taken the lock over (we looked stale, e.g. the event
        // loop stalled past `stale`); what fn wrote may have raced with it.
        if (lost) throw new VirtkitError('IO_ERROR', `lost the lock on state store ${this.#dir}`, { cause: lost });
        settle.resolve(result);
      } catch (e) {
        settle.reject(e);
      } finally {
        // Anything fn started without awaiting it queues from now on, behind the release.
        endHold();
        // The caller goes on first: removing the lock dir takes 0.3-1 ms on some disks, and
        // what fn wrote is already visible. Later holders in this process queue behind the
        // release; a process that exits meanwhile has it released by proper-lockfile's exit hook.
        if (!lost) {
          await new Promise((r) => setImmediate(r));
          try {
            await release();
          } catch {
            // Left behind, it goes stale in 2 s and the next holder takes it over.
          }
        }
      }
    }).catch((e) => settle.reject(e));
    return outcome;
  }

  async close(): Promise<void> {
    await this.#local.drain();
    this.#closed = true;
  }

  /** Domain file path; names are validated upstream, but a bad one must never escape dir. */
  #file(name: string): string {
    if (name === '' || name.includes('/') || name.includes('\0') || name.startsWith('.')) {
      throw new VirtkitError('INVALID_ARGUMENT', `invalid domain name ${JSON.stringify(name)}`);
    }
    return join(this.#domains, `${name}.json`);
  }

  #write(file: string, d: StoredDomain): Promise<void> {
    return writeFileAtomic(file, JSON.stringify(d, null, 2) + '\n');
  }

  /**
   * The journal's shape, re-read only when the file changed under us (another process
   * appended or compacted; compaction renames, so the inode changes).
   */
  async #readJournal(): Promise<JournalScan> {
    let fd;
    try {
      fd = openSync(this.#journal, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return (this.#scan = NO_JOURNAL);
      throw e;
    }
    try {
      const st = fstatSync(fd);
      const s = this.#scan;
      if (s && s.ino === st.ino && s.size === st.size && s.mtimeMs === st.mtimeMs) return s;
      // Read through the handle and only `size` bytes, so what we parse matches the key
      // even if a writer appends meanwhile.
      const buf = await readFd(fd, st.size);
      const cleanEnd = buf.lastIndexOf(0x0a) + 1;
      const lines = buf.toString('utf8', 0, cleanEnd).split('\n').slice(0, -1);
      let lastSeq = 0;
      for (let i = lines.length - 1; i >= 0 && !lastSeq; i--) lastSeq = parseEvent(lines[i]!)?.seq ?? 0;
      return (this.#scan = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, cleanEnd, lines: lines.length, lastSeq });
    } finally {
      closeSync(fd);
    }
  }

  /** The journal with any torn last line cut off. Caller holds the lock. */
  async #cleanJournal(): Promise<JournalScan> {
    const j = await this.#readJournal();
    if (j.cleanEnd === j.size) return j;
    // Appenders hold the lock, so a partial line now is a crashed writer's, never to be completed.
    await truncate(this.#journal, j.cleanEnd);
    return this.#readJournal();
  }

  /** Keep the journal bounded; seq continues from the newest kept line. Caller holds the lock. */
  async #compact(): Promise<void> {
    const lines = (await readFile(this.#journal, 'utf8')).split('\n').slice(0, -1);
    await writeFileAtomic(this.#journal, lines.slice(-JOURNAL_KEEP_EVENTS).join('\n') + '\n');
    this.#scan = undefined;
  }
}

/** Whole lines only: a torn last line (a writer mid-append or crashed) is not an event. */
/** The first `size` bytes of an open file (the journal can be large: read in the thread pool). */
async function readFd(fd: number, size: number): Promise<Buffer> {
  const buf = Buffer.alloc(size);
  let n = 0;
  while (n < size) {
    const got = await new Promise<number>((res, rej) => read(fd, buf, n, size - n, n, (e, k) => (e ? rej(e) : res(k))));
    if (got === 0) break;
    n += got;
  }
  return buf.subarray(0, n);
}

function parseJournal(text: string): DomainEvent[] {
  const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n');
  return lines.map(parseEvent).filter((e) => e !== undefined);
}

/** A line that does not parse (disk damage) is skipped rather than fatal to the whole store. */
function parseEvent(line: string): DomainEvent | undefined {
  try {
    const e = JSON.parse(line) as DomainEvent;
    return typeof e?.seq === 'number' ? e : undefined;
  } catch {
    return undefined;
  }
}
