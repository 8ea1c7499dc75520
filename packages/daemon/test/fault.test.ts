// Fault test for remote access: the BUILT virtkitd (run `pnpm build` first) serving qemu:///system
// on its admin unix socket is killed with SIGKILL while a client has a call in flight. The
// domain's QEMU (a real tiny guest, scripts/build-test-guest.sh, under TCG where KVM is not
// usable) must survive; changes made through core while no daemon runs land in the node's
// journal, and a client reconnecting to the restarted daemon with `since` = its last seq gets
// exactly those events, once each, in order.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, Host, type DomainEvent } from '@virtkit/core';
import { connectRemote, type RemoteConnection } from '@virtkit/rpc';
import { hasGuest, hostOptions as hostOptionsAt, qemuPids, repo, stopGuests, tinyVm, until as untilFor } from './guest.js';
import { spawnDaemon, type RunningDaemon } from './spawn.js';


// Short paths: a unix socket path must stay under 108 bytes.
const root = mkdtempSync('/tmp/vk-');
const NAME = `fault${process.pid % 100000}`;
const adminSock = join(root, 'admin.sock');
const uri = `qemu+unix:///system?socket=${adminSock}`;
const config = join(root, 'virtkitd.json');

const vm = (name: string) => tinyVm(root, name);


const daemons: RunningDaemon[] = [];
const remotes: RemoteConnection[] = [];

function startDaemon(): RunningDaemon {
  const d = spawnDaemon(config, root);
  daemons.push(d);
  return d;
}

/** Connects once the daemon listens and serves the node (retrying while the socket is not up). */
async function connectWhenUp(d: RunningDaemon, ms = 30_000): Promise<RemoteConnection> {
  const end = Date.now() + ms;
  for (;;) {
    if (d.child.exitCode !== null || d.child.signalCode !== null) throw new Error(`the daemon exited: ${d.log()}`);
    try {
      const r = await connectRemote(uri, { keepaliveMs: 0 });
      remotes.push(r);
      return r;
    } catch (e) {
      if (Date.now() > end) throw new Error(`the daemon did not come up: ${(e as Error).message}\n${d.log()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const until = (what: string, f: () => boolean, ms = 15_000) => untilFor(what, f, ms, 20);

describe.skipIf(!hasGuest && !process.env.CI)('virtkitd killed with SIGKILL on qemu:///system', () => {
  afterAll(async () => {
    for (const r of remotes) r.close();
    for (const d of daemons) {
      if (d.child.exitCode === null && d.child.signalCode === null) {
        d.child.kill('SIGKILL');
        await d.exit;
      }
    }
    await stopGuests(root, [NAME]);
  });

  it('leaves the domain running, and a reconnecting client resumes its event stream without gaps or repeats', async () => {
    writeFileSync(config, JSON.stringify({
      listen: [],
      unix: { admin: adminSock, readOnly: join(root, 'ro.sock') },
      host: { stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue') },
      nodes: ['qemu:///system'],
    }));

    // 1. Client A defines and starts the domain, recording every event it sees.
    const first = startDaemon();
    const a = await connectWhenUp(first);
    const seenByA: { seq: number; kind: string }[] = [];
    a.onEvent((e) => seenByA.push({ seq: e.seq, kind: e.kind }));
    await a.define(vm(NAME));
    expect(await a.start(NAME)).toMatchObject({ state: 'running' });
    await until('A to see the started event', () => seenByA.some((e) => e.kind === 'started'));
    expect(seenByA.map((e) => e.kind)).toEqual(['defined', 'started']);
    for (let i = 1; i < seenByA.length; i++) expect(seenByA[i]!.seq).toBeGreaterThan(seenByA[i - 1]!.seq);
    const lastA = a.lastSeq;
    expect(lastA).toBe(seenByA.at(-1)!.seq);
    const pids = qemuPids(NAME);
    expect(pids).toHaveLength(1);

    // 2. SIGKILL the daemon while A keeps an `info` call in flight: the call fails with IO_ERROR.
    let calls = 0;
    const loop = (async () => {
      for (;;) {
        await a.info(NAME);
        calls++;
      }
    })();
    loop.catch(() => {});
    await until('a few info calls', () => calls >= 3);
    first.child.kill('SIGKILL');
    const failure = await loop.then(() => undefined, (e: unknown) => e);
    expect(failure).toMatchObject({ code: 'IO_ERROR', message: expect.stringMatching(/connection to the daemon lost/) });
    expect(await first.exit).toEqual({ code: null, signal: 'SIGKILL' });
    expect(a.closed).toBe(true);
    await expect(a.info(NAME)).rejects.toMatchObject({ code: 'IO_ERROR' });
    expect(qemuPids(NAME)).toEqual(pids);

    // 3. No daemon runs: change the node through core in-process (same host roots).
    const host = await new Host(hostOptionsAt(root)).init();
    try {
      const conn = await connect('qemu:///system', { host });
      expect(await conn.suspend(NAME)).toMatchObject({ state: 'paused' });
      expect(await conn.resume(NAME)).toMatchObject({ state: 'running' });
      await conn.close();
    } finally {
      await host.close();
    }
    expect(qemuPids(NAME)).toEqual(pids);

    // 4. A new daemon on the same config; A reconnects and resumes from its last seq.
    const second = startDaemon();
    const b = await connectWhenUp(second);
    const missed = await b.eventsSince(lastA);
    expect(missed.map((e) => e.kind)).toEqual(['suspended', 'resumed']);
    expect(missed.every((e) => e.domain === NAME)).toBe(true);

    const got: DomainEvent[] = [];
    const stream = b.events({ since: lastA });
    const next = async () => {
      const r = await stream.next();
      expect(r.done).toBe(false);
      got.push(r.value as DomainEvent);
    };
    await next();
    await next();
    expect(got.map((e) => ({ seq: e.seq, kind: e.kind }))).toEqual(missed.map((e) => ({ seq: e.seq, kind: e.kind })));
    expect(got[0]!.seq).toBeGreaterThan(lastA!);
    expect(got[1]!.seq).toBeGreaterThan(got[0]!.seq);
    for (const e of got) expect(seenByA.map((s) => s.seq)).not.toContain(e.seq);
    expect(b.lastSeq).toBe(got[1]!.seq);
    expect(qemuPids(NAME)).toEqual(pids);
    expect(await b.info(NAME)).toMatchObject({ state: 'running' });

    expect(await b.destroy(NAME)).toMatchObject({ state: 'shut-off' });
    await next();
    expect(got).toHaveLength(3);
    expect(got[2]).toMatchObject({ domain: NAME, kind: 'stopped' });
    expect(got[2]!.seq).toBeGreaterThan(got[1]!.seq);
    expect(b.lastSeq).toBe(got[2]!.seq);
    await stream.return!();
    await until('the QEMU to exit', () => qemuPids(NAME).length === 0);

    b.close();
    second.child.kill('SIGTERM');
    expect(await second.exit, second.log()).toEqual({ code: 0, signal: null });
  }, 60_000);
});
