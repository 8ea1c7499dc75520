// The spawner: child processes started through a small helper process (cheap forks) behave
// as those started directly: output, stdin, bounds, kill on abort, exits of background ones.
// Imports the BUILT launcher: the spawner is the compiled spawner.js next to it (pnpm build).
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { DirectLauncher, SpawnerLauncher, type Exit } from '../dist/wasm/launcher.js';

const until = async (what: string, cond: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
};
const ppidOf = (pid: number) => Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const env = { PATH: '/usr/bin:/bin' };

describe('launchers', () => {
  const spawner = new SpawnerLauncher();
  afterAll(() => spawner.close());

  it('the spawner comes up after the first request, which is started directly meanwhile', async () => {
    expect(spawner.usable).toBe(false); // this first look starts it
    const first = await spawner.run({ file: '/bin/sh', args: ['-c', 'echo $PPID'], env, max: 100 }, new AbortController().signal);
    expect(Number(text(first.stdout))).toBe(process.pid);
    await until('the spawner to be ready', () => spawner.usable);
  });

  for (const [name, launcher, parent] of [
    ['direct', new DirectLauncher(), () => process.pid],
    ['through the spawner', spawner, () => 0],
  ] as const) {
    it(`runs to completion with stdin and bounded output (${name})`, async () => {
      const r = await launcher.run({ file: '/bin/sh', args: ['-c', 'echo $PPID; cat; echo err >&2; exit 3'], env, stdin: new TextEncoder().encode('in'), max: 64 }, new AbortController().signal);
      const [ppid, rest] = text(r.stdout).split('\n');
      if (parent()) expect(Number(ppid)).toBe(parent());
      else {
        // Not this process: the spawner, a node process running spawner.js.
        expect(Number(ppid)).not.toBe(process.pid);
        expect(readFileSync(`/proc/${ppid}/cmdline`, 'utf8')).toContain('spawner.js');
      }
      expect(rest).toBe('in');
      expect([r.code, r.signal, text(r.stderr), r.truncated]).toEqual([3, null, 'err\n', false]);
      const big = await launcher.run({ file: '/bin/sh', args: ['-c', 'echo 0123456789'], env, max: 4 }, new AbortController().signal);
      expect([text(big.stdout), big.truncated]).toEqual(['0123', true]);
    });

    it(`kills a run when its signal aborts (${name})`, async () => {
      const ac = new AbortController();
      const p = launcher.run({ file: '/bin/sleep', args: ['30'], env, max: 0 }, ac.signal);
      setTimeout(() => ac.abort(), 50);
      expect(await p).toMatchObject({ code: null, signal: 'SIGKILL' });
    });

    it(`starts a background child, reports its pid and later its exit (${name})`, async () => {
      let exit: (Exit & { pid: number }) | undefined;
      const pid = await launcher.background({ file: '/bin/sleep', args: ['30'], env, detached: true }, (x) => (exit = x));
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('/bin/sleep\u000030\u0000');
      if (parent()) expect(ppidOf(pid)).toBe(parent());
      else expect(ppidOf(pid)).not.toBe(process.pid);
      process.kill(pid, 'SIGTERM');
      await until('the exit to be reported', () => exit !== undefined);
      expect(exit).toEqual({ pid, code: null, signal: 'SIGTERM' });
    });
  }

  it('when the spawner is killed: runs in flight fail, children are reported orphaned, and a new spawner comes up', async () => {
    const l = new SpawnerLauncher();
    void l.usable;
    await until('a spawner', () => l.usable);
    const exits: Array<Exit & { pid: number; orphaned?: boolean }> = [];
    const attachedPid = await l.background({ file: '/bin/sleep', args: ['30'], env, detached: false }, (x) => exits.push(x));
    const detachedPid = await l.background({ file: '/bin/sleep', args: ['30'], env, detached: true }, (x) => exits.push(x));
    const spawnerPid = ppidOf(attachedPid);
    expect(readFileSync(`/proc/${spawnerPid}/cmdline`, 'utf8')).toContain('spawner.js');
    const inFlight = l.run({ file: '/bin/sleep', args: ['30'], env, max: 0 }, new AbortController().signal);
    process.kill(spawnerPid, 'SIGKILL');
    await expect(inFlight).rejects.toThrow(/spawner process exited/);
    expect(exits.map((x) => [x.pid, x.orphaned]).sort()).toEqual([[attachedPid, true], [detachedPid, true]].sort());
    // A new one serves the next requests.
    await until('a new spawner', () => l.usable);
    const r = await l.run({ file: '/bin/sh', args: ['-c', 'echo $PPID'], env, max: 100 }, new AbortController().signal);
    expect([Number(text(r.stdout)) !== process.pid, Number(text(r.stdout)) !== spawnerPid]).toEqual([true, true]);
    l.close();
    for (const pid of [attachedPid, detachedPid]) process.kill(pid, 'SIGKILL');
  });

  it('a spawner that is closed takes its attached children with it; detached ones live on', async () => {
    const l = new SpawnerLauncher();
    void l.usable;
    await until('a spawner', () => l.usable);
    const attachedPid = await l.background({ file: '/bin/sleep', args: ['30'], env, detached: false }, () => {});
    const detachedPid = await l.background({ file: '/bin/sleep', args: ['31'], env, detached: true }, () => {});
    l.close();
    const goneOrZombie = (pid: number) => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
    await until('the attached child to go', () => goneOrZombie(attachedPid));
    expect(goneOrZombie(detachedPid)).toBe(false);
    process.kill(detachedPid, 'SIGKILL');
  });

  it('the spawner exits when closed; later requests are started directly', async () => {
    const r = await spawner.run({ file: '/bin/sh', args: ['-c', 'echo $PPID'], env, max: 100 }, new AbortController().signal);
    const spawnerPid = Number(text(r.stdout));
    expect(spawnerPid).not.toBe(process.pid);
    spawner.close();
    await until('the spawner to exit', () => !existsSync(`/proc/${spawnerPid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${spawnerPid}/status`, 'utf8')));
    const after = await spawner.run({ file: '/bin/sh', args: ['-c', 'echo $PPID'], env, max: 100 }, new AbortController().signal);
    expect(Number(text(after.stdout))).toBe(process.pid);
  });
});
