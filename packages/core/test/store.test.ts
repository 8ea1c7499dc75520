import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtkitError } from '../src/errors.js';
import { writeFileAtomic } from '../src/store/atomic.js';
import { FileStore } from '../src/store/file-store.js';
import { MemoryStore } from '../src/store/memory-store.js';
import type { StateStore } from '../src/store/store.js';
import type { DomainEvent } from '../src/types.js';

const tmpDirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'virtkit-store-'));
  tmpDirs.push(d);
  return d;
}
afterAll(async () => {
  await Promise.all(tmpDirs.map((d) => rm(d, { recursive: true, force: true })));
});

const ev = (domain = 'vm1'): Omit<DomainEvent, 'seq'> => ({ time: Date.now(), domain, kind: 'started', reason: 'booted' });

/** Write a journal of events seq 1..n directly, as a store that ran a long time would have. */
async function seedJournal(dir: string, n: number): Promise<void> {
  const lines = Array.from({ length: n }, (_, i) => JSON.stringify({ ...ev(), seq: i + 1 }) + '\n');
  await writeFile(join(dir, 'events.jsonl'), lines.join(''));
}

interface Kind {
  name: string;
  open(): Promise<StateStore>;
  /** A store whose journal already holds events 1..n. */
  withEvents(n: number): Promise<StateStore>;
}

const kinds: Kind[] = [
  {
    name: 'MemoryStore',
    open: async () => new MemoryStore(),
    async withEvents(n) {
      const s = new MemoryStore();
      for (let i = 0; i < n; i++) await s.appendEvent(ev());
      return s;
    },
  },
  {
    name: 'FileStore',
    open: async () => FileStore.open(await tempDir()),
    async withEvents(n) {
      const dir = await tempDir();
      await seedJournal(dir, n);
      return FileStore.open(dir);
    },
  },
];

describe.each(kinds)('$name', (kind) => {
  it('defines a new domain shut off, and keeps status and runtime on redefinition', async () => {
    const s = await kind.open();
    expect(await s.getDomain('vm1')).toBeUndefined();
    await s.putConfig('vm1', { memory: 1 });
    expect(await s.getDomain('vm1')).toEqual({ name: 'vm1', config: { memory: 1 }, status: { state: 'shut-off', reason: 'unknown' } });
    await s.putRuntime('vm1', { state: 'running', reason: 'booted' }, '{"pid":42}');
    await s.putConfig('vm1', { memory: 2 });
    expect(await s.getDomain('vm1')).toEqual({
      name: 'vm1',
      config: { memory: 2 },
      status: { state: 'running', reason: 'booted' },
      runtime: '{"pid":42}',
    });
    await s.close();
  });

  it('drops the runtime record when given undefined, and refuses a runtime for an unknown domain', async () => {
    const s = await kind.open();
    await s.putConfig('vm1', {});
    await s.putRuntime('vm1', { state: 'running', reason: 'booted' }, 'rt');
    await s.putRuntime('vm1', { state: 'shut-off', reason: 'destroyed' }, undefined);
    const d = await s.getDomain('vm1');
    expect(d).toEqual({ name: 'vm1', config: {}, status: { state: 'shut-off', reason: 'destroyed' } });
    expect(d).not.toHaveProperty('runtime');
    await expect(s.putRuntime('nope', { state: 'running', reason: 'booted' }, 'rt')).rejects.toSatisfy((e) => VirtkitError.is(e, 'NO_DOMAIN'));
    await s.close();
  });

  it('lists domains sorted by name and removes them (a missing one is a no-op)', async () => {
    const s = await kind.open();
    for (const n of ['b', 'a', 'C', 'c']) await s.putConfig(n, { n });
    expect((await s.listDomains()).map((d) => d.name)).toEqual(['C', 'a', 'b', 'c']);
    await s.removeDomain('b');
    await s.removeDomain('b');
    await s.removeDomain('never-existed');
    expect((await s.listDomains()).map((d) => d.name)).toEqual(['C', 'a', 'c']);
    expect(await s.getDomain('b')).toBeUndefined();
    await s.close();
  });

  it('does not share objects with callers', async () => {
    const s = await kind.open();
    const config = { disks: [{ path: '/a' }] };
    await s.putConfig('vm1', config);
    config.disks[0]!.path = '/mutated';
    const got = (await s.getDomain('vm1'))!;
    (got.config.disks as { path: string }[])[0]!.path = '/mutated-too';
    got.status.state = 'crashed';
    (await s.listDomains())[0]!.config.extra = true;
    expect(await s.getDomain('vm1')).toEqual({ name: 'vm1', config: { disks: [{ path: '/a' }] }, status: { state: 'shut-off', reason: 'unknown' } });
    const e = await s.appendEvent(ev());
    e.domain = 'mutated';
    (await s.eventsSince(0))[0]!.domain = 'mutated';
    expect((await s.eventsSince(0))[0]!.domain).toBe('vm1');
    await s.close();
  });

  it('numbers events monotonically and returns those after a seq', async () => {
    const s = await kind.open();
    expect(await s.lastSeq()).toBe(0);
    expect(await s.eventsSince(0)).toEqual([]);
    // Concurrent appends still get distinct, consecutive numbers.
    const got = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((d) => s.appendEvent(ev(d))));
    expect(got.map((e) => e.seq).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(await s.lastSeq()).toBe(5);
    const since = await s.eventsSince(3);
    expect(since.map((e) => e.seq)).toEqual([4, 5]);
    expect(since[0]).toEqual(got.find((e) => e.seq === 4));
    await s.close();
  });

  it('keeps the journal bounded without resetting seq', async () => {
    const s = await kind.withEvents(10_000);
    expect(await s.lastSeq()).toBe(10_000);
    expect((await s.appendEvent(ev())).seq).toBe(10_001);
    const kept = await s.eventsSince(0);
    expect(kept).toHaveLength(5000);
    expect(kept[0]!.seq).toBe(5002);
    expect((await s.appendEvent(ev())).seq).toBe(10_002);
    await s.close();
  });

  it('serializes withLock callers and lets the holder call back in (re-entrant)', async () => {
    const s = await kind.open();
    const log: string[] = [];
    const task = (id: number) =>
      s.withLock(async () => {
        log.push(`+${id}`);
        await sleep(1);
        // Mutators take the lock themselves; inside withLock that must not deadlock.
        await s.putConfig(`vm${id}`, {});
        await s.appendEvent(ev(`vm${id}`));
        await s.withLock(async () => sleep(1));
        log.push(`-${id}`);
        return id;
      });
    expect(await Promise.all([1, 2, 3, 4, 5].map(task))).toEqual([1, 2, 3, 4, 5]);
    expect(log).toEqual([1, 2, 3, 4, 5].flatMap((id) => [`+${id}`, `-${id}`]));
    // A failing holder releases the lock.
    await expect(s.withLock(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await s.withLock(async () => 'ok')).toBe('ok');
    await s.close();
  });
});

describe('FileStore', () => {
  it('lays out per domain a durable config file and a runtime state file, in a private directory', async () => {
    const dir = join(await tempDir(), 'nested', 'store');
    const s = await FileStore.open(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    await s.putConfig('vm1', { a: 1 });
    const file = join(dir, 'domains', 'vm1.json');
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ name: 'vm1', config: { a: 1 } });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await s.putRuntime('vm1', { state: 'running', reason: 'booted' }, '{"pid":1}');
    const state = join(dir, 'domains', 'vm1.state');
    // Records are appended, each after a newline: the newest one counts.
    expect(JSON.parse((await readFile(state, 'utf8')).split('\n').at(-1)!)).toEqual({ status: { state: 'running', reason: 'booted' }, runtime: '{"pid":1}' });
    expect((await stat(state)).mode & 0o777).toBe(0o600);
    await s.close();
  });

  it('reads a state file torn by a power loss as shut off, keeping the config', async () => {
    const dir = await tempDir();
    const s = await FileStore.open(dir);
    await s.putConfig('vm1', { a: 1 });
    await s.putRuntime('vm1', { state: 'running', reason: 'booted' }, '{}');
    await writeFile(join(dir, 'domains', 'vm1.state'), '{"status":{"sta');
    expect(await s.getDomain('vm1')).toEqual({ name: 'vm1', config: { a: 1 }, status: { state: 'shut-off', reason: 'unknown' } });
    expect((await s.listDomains()).map((d) => d.status.state)).toEqual(['shut-off']);
    await s.close();
  });

  it('reads the newest whole state record: one cut short by a killed writer leaves the one before', async () => {
    const dir = await tempDir();
    const s = await FileStore.open(dir);
    await s.putConfig('vm1', { a: 1 });
    await s.putRuntime('vm1', { state: 'running', reason: 'booted' }, '{"pid":1}');
    const file = join(dir, 'domains', 'vm1.state');
    await writeFile(file, '\n{"status":{"state":"paused","rea', { flag: 'a' });
    expect((await s.getDomain('vm1'))?.status).toEqual({ state: 'running', reason: 'booted' });
    // The next record, appended after the torn one, is read whole.
    await s.putRuntime('vm1', { state: 'paused', reason: 'user' }, '{"pid":1}');
    expect((await s.getDomain('vm1'))?.status).toEqual({ state: 'paused', reason: 'user' });
    // A file grown past its bound is rewritten with its newest record only.
    for (let i = 0; i < 400; i++) await s.putRuntime('vm1', { state: 'running', reason: 'booted' }, JSON.stringify({ pid: 1, pad: 'x'.repeat(100), i }));
    const text = await readFile(file, 'utf8');
    expect(text.length).toBeLessThanOrEqual(32 * 1024);
    expect(JSON.parse(text.split('\n').at(-1)!).runtime).toContain('"i":399');
    expect((await s.listDomains())[0]?.runtime).toContain('"i":399');
    await s.close();
  });

  it('rejects domain names that could escape or hide in its directory', async () => {
    const s = await FileStore.open(await tempDir());
    for (const name of ['../etc/passwd', 'a/b', 'nul\0byte', '.hidden', '..', '']) {
      await expect(s.putConfig(name, {})).rejects.toSatisfy((e) => VirtkitError.is(e, 'INVALID_ARGUMENT'));
      await expect(s.getDomain(name)).rejects.toSatisfy((e) => VirtkitError.is(e, 'INVALID_ARGUMENT'));
    }
    await s.close();
  });

  it('keeps domains and seq across close and reopen', async () => {
    const dir = await tempDir();
    let s = await FileStore.open(dir);
    await s.putConfig('vm1', { a: 1 });
    for (let i = 0; i < 3; i++) await s.appendEvent(ev());
    await s.close();
    s = await FileStore.open(dir);
    expect(await s.lastSeq()).toBe(3);
    expect((await s.appendEvent(ev())).seq).toBe(4);
    expect((await s.getDomain('vm1'))?.config).toEqual({ a: 1 });
    await s.close();
  });

  it('never reuses a seq after a reboot lost the journal tail (appends are not fsynced)', async () => {
    const dir = await tempDir();
    let s = await FileStore.open(dir);
    for (let i = 0; i < 3; i++) await s.appendEvent(ev());
    await s.close();
    // The reservation is durable: the seqs this boot may hand out, ahead of the journal.
    const reserved = JSON.parse(await readFile(join(dir, 'events.seq'), 'utf8')) as { boot: string; upTo: number };
    expect(reserved.boot).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(reserved.upTo).toBeGreaterThanOrEqual(3);
    // Same boot: the journal is the truth (a process crash loses nothing), seqs stay consecutive.
    s = await FileStore.open(dir);
    expect((await s.appendEvent(ev())).seq).toBe(4);
    await s.close();
    // A power loss: another boot, and the page cache took events up to seq 4 with it.
    await seedJournal(dir, 2);
    await writeFile(join(dir, 'events.seq'), JSON.stringify({ boot: 'an-earlier-boot', upTo: reserved.upTo }));
    s = await FileStore.open(dir);
    const next = (await s.appendEvent(ev())).seq;
    expect(next).toBe(reserved.upTo + 1);
    expect((await s.appendEvent(ev())).seq).toBe(next + 1);
    expect((await s.eventsSince(2)).map((e) => e.seq)).toEqual([next, next + 1]);
    await s.close();
    // A damaged reservation (it is written atomically, so only damage makes it unreadable):
    // what it reserved is unknown, so the next seq jumps far past anything it could have.
    await writeFile(join(dir, 'events.seq'), '{"boot": "x", "upTo": 12');
    s = await FileStore.open(dir);
    expect((await s.appendEvent(ev())).seq).toBeGreaterThan(next + 1 + 2 ** 31);
    await s.close();
  });

  it('ignores a torn last journal line and cuts it off on open', async () => {
    const dir = await tempDir();
    await seedJournal(dir, 3);
    const journal = join(dir, 'events.jsonl');
    const whole = await readFile(journal, 'utf8');
    await writeFile(journal, whole + '{"seq":4,"time":17');
    const s = await FileStore.open(dir);
    expect(await readFile(journal, 'utf8')).toBe(whole);
    expect(await s.lastSeq()).toBe(3);
    expect((await s.eventsSince(0)).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await s.appendEvent(ev())).seq).toBe(4);
    // A store that is already open tolerates one too (another process crashed mid-append).
    await writeFile(journal, '{"seq":5,"ti', { flag: 'a' });
    expect(await s.lastSeq()).toBe(4);
    expect((await s.eventsSince(3)).map((e) => e.seq)).toEqual([4]);
    expect((await s.appendEvent(ev())).seq).toBe(5);
    expect((await readFile(journal, 'utf8')).split('\n').map((l) => l && JSON.parse(l).seq)).toEqual([1, 2, 3, 4, 5, '']);
    await s.close();
  });

  it('removes temp files a crashed writer left behind', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'domains'));
    await writeFile(join(dir, 'domains', '.vm1.json.123.abc.tmp'), '{"half":');
    const s = await FileStore.open(dir);
    expect(await readdir(join(dir, 'domains'))).toEqual([]);
    await s.close();
  });

  it('serializes two instances on one directory', async () => {
    const dir = await tempDir();
    const [a, b] = [await FileStore.open(dir), await FileStore.open(dir)];
    const log: string[] = [];
    const task = (s: FileStore, id: string) =>
      s.withLock(async () => {
        log.push(`+${id}`);
        await sleep(2);
        log.push(`-${id}`);
      });
    await Promise.all(Array.from({ length: 8 }, (_, i) => [task(a, `a${i}`), task(b, `b${i}`)]).flat());
    expect(log).toHaveLength(32);
    for (let i = 0; i < log.length; i += 2) expect(log[i + 1]).toBe(log[i]!.replace('+', '-'));
    // Both hand out seqs from the shared journal, not from their own memory.
    const seqs = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).appendEvent(ev())));
    expect(seqs.map((e) => e.seq).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await a.lastSeq()).toBe(6);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses use after close', async () => {
    const s = await FileStore.open(await tempDir());
    await s.close();
    await expect(s.putConfig('vm1', {})).rejects.toSatisfy((e) => VirtkitError.is(e, 'OPERATION_INVALID'));
  });
});

describe('crash safety (SIGKILLed child processes)', () => {
  // Children run plain JS (vitest does not transform them): transpile the store sources
  // into a temp dir, keeping their layout so relative imports resolve, and link the
  // package's node_modules for proper-lockfile.
  let lib: string;
  beforeAll(async () => {
    lib = await tempDir();
    const src = fileURLToPath(new URL('../src/', import.meta.url));
    for (const f of ['errors.ts', 'store/atomic.ts', 'store/memory-store.ts', 'store/file-store.ts']) {
      const { outputText } = ts.transpileModule(await readFile(join(src, f), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      });
      await mkdir(dirname(join(lib, f)), { recursive: true });
      await writeFile(join(lib, f.replace(/\.ts$/, '.js')), outputText);
    }
    await symlink(join(src, '..', 'node_modules'), join(lib, 'node_modules'));
    await writeFile(join(lib, 'package.json'), '{"type":"module"}');
    await writeFile(
      join(lib, 'write-child.js'),
      `import { createHash, randomBytes } from 'node:crypto';
       import { writeFileAtomic } from './store/atomic.js';
       const targets = process.argv.slice(2);
       for (let n = 0; ; n++) {
         for (const t of targets) {
           const payload = randomBytes(100_000).toString('hex');
           const checksum = createHash('sha256').update(payload).digest('hex');
           await writeFileAtomic(t, JSON.stringify({ n, payload, checksum }));
         }
         if (n === 0) process.stdout.write('ready\\n');
       }`,
    );
    await writeFile(
      join(lib, 'append-child.js'),
      `import { FileStore } from './store/file-store.js';
       const [dir, count = 'Infinity'] = process.argv.slice(2);
       const store = await FileStore.open(dir);
       process.stdout.write('ready\\n');
       for (let i = 0; i < Number(count); i++) {
         await store.appendEvent({ time: Date.now(), domain: 'vm' + (i % 3), kind: 'started', reason: 'booted' });
       }
       await store.close();`,
    );
  });

  /** Start a child script; resolves once it printed "ready". */
  async function start(script: string, args: string[]): Promise<ChildProcess> {
    const child = spawn(process.execPath, [join(lib, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('ready')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`child exited (${code}) before ready: ${err}`)));
    });
    return child;
  }

  async function exited(child: ChildProcess): Promise<number | null> {
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    return child.exitCode;
  }

  it('never leaves a torn file behind, whenever the writer dies', async () => {
    const dir = await tempDir();
    const targets = ['a.json', 'b.json', 'c.json'].map((f) => join(dir, f));
    // Pre-existing content: the rename must replace it atomically too.
    await writeFileAtomic(targets[0]!, JSON.stringify({ n: -1, payload: '', checksum: createHash('sha256').update('').digest('hex') }));
    for (let round = 0; round < 30; round++) {
      const child = await start('write-child.js', targets);
      await sleep(Math.random() * 40);
      child.kill('SIGKILL');
      await exited(child);
      for (const t of targets) {
        const doc = JSON.parse(await readFile(t, 'utf8'));
        expect(createHash('sha256').update(doc.payload).digest('hex')).toBe(doc.checksum);
      }
    }
  });

  it('keeps the journal whole and its seq increasing across killed appenders', async () => {
    const dir = await tempDir();
    const journal = join(dir, 'events.jsonl');
    let last = 0;
    for (let round = 0; round < 6; round++) {
      const child = await start('append-child.js', [dir]);
      await sleep(20 + Math.random() * 60);
      child.kill('SIGKILL');
      await exited(child);
      const lines = (await readFile(journal, 'utf8')).split('\n');
      lines.pop(); // '' after the final newline, or a line torn by the kill
      const seqs = lines.map((l) => (JSON.parse(l) as DomainEvent).seq);
      seqs.forEach((seq, i) => expect(seq).toBe(i + 1));
      expect(seqs.length).toBeGreaterThan(last);
      last = seqs.length;
      // The child most likely died holding the lock; it is dead, so skip the 2 s it
      // would take to go stale.
      await rm(join(dir, '.lock'), { recursive: true, force: true });
      const s = await FileStore.open(dir);
      expect(await s.lastSeq()).toBe(last);
      expect(await readFile(journal, 'utf8')).toMatch(/\}\n$/);
      await s.close();
    }
  });

  it('gives unique consecutive seqs to processes appending at once', async () => {
    const dir = await tempDir();
    const children = await Promise.all([start('append-child.js', [dir, '40']), start('append-child.js', [dir, '40'])]);
    expect(await Promise.all(children.map(exited))).toEqual([0, 0]);
    const s = await FileStore.open(dir);
    expect((await s.eventsSince(0)).map((e) => e.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    await s.close();
  });
});
