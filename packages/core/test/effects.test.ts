// Effects performed for real by the host (files, processes, a unix-socket channel), and
// unsolicited channel input and process exits reaching the driver as handle-event.
// The JSON-lines peer on the socket is this test, standing in for QEMU's QMP server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, type Connection, type DomainEvent, type Host, type LoadedPlugin } from '../src/index.js';
import { fixture, tempDir, testHost } from './helpers.js';

/** A QMP-shaped peer: answers each command with {"return":{}}, emits events on demand. */
class Peer {
  server: Server;
  client?: Socket;
  commands: string[] = [];
  constructor(path: string) {
    this.server = createServer((s) => {
      this.client = s;
      let buf = '';
      s.on('data', (d) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const cmd = JSON.parse(buf.slice(0, nl)).execute as string;
          buf = buf.slice(nl + 1);
          this.commands.push(cmd);
          // QEMU sends the STOP event before the reply to "stop".
          if (cmd === 'stop') this.emit('STOP');
          s.write(JSON.stringify({ return: {} }) + '\n');
        }
      });
    });
    this.server.listen(path);
  }
  emit(event: string) {
    this.client!.write(JSON.stringify({ event, timestamp: { seconds: 0, microseconds: 0 } }) + '\n');
  }
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('effects performed by the host', () => {
  let host: Host;
  let io: LoadedPlugin;
  let conn: Connection;
  let peer: Peer;
  const events: DomainEvent[] = [];

  beforeAll(async () => {
    host = await testHost({ pluginPaths: [fixture('io')], policy: { plugins: { 'virtkit-fixture-io': { grants: 'requested' } } }, stepTimeoutMs: 500 });
    conn = await connect('io:///default', { host });
    conn.onEvent((e) => events.push(e));
    io = await host.plugins.forScheme('io');
    peer = new Peer(join(io.runtimeDir, 'default', 'peer.sock'));
  });
  afterAll(async () => {
    peer?.server.close();
    await conn?.close();
    await host?.close();
  });

  it('reads, writes, stats, lists and removes files; runs programs with stdin, bounded output and time-outs; signals and waits', async () => {
    // Two trees for a recursive remove (a flat one, removed on the worker thread, and one with
    // a subdirectory), each holding a symlink to a file outside every grant.
    const outside = join(tempDir(), 'precious');
    writeFileSync(outside, 'keep me');
    for (const t of ['flat', 'deep/sub']) {
      mkdirSync(join(io.stateDir, t), { recursive: true });
      writeFileSync(join(io.stateDir, t, 'f'), 'x');
      symlinkSync(outside, join(io.stateDir, t, 'link'));
    }
    const out = await io.host.run({
      kind: 'info', node: { uri: 'io:///default', stateDir: io.stateDir, runtimeDir: io.runtimeDir }, args: '{}',
    });
    expect(JSON.parse(out.payload!)).toEqual({
      text: '{"x":1}', size: 5, mode: 0o640, missing: true, names: ['a.json:file', 'b.txt:file'], afterRemove: 1, trees: { flat: true, deep: true },
      cat: 'hello through cat', catCode: 0, big: '{"x":1}{"x', truncated: true,
      slow: 'timeout', exitSignal: 'SIGTERM', procState: expect.stringMatching(/^[RS]$/), procRss: true, clockOk: true,
    });
    expect(readFileSync(outside, 'utf8')).toBe('keep me');
  });

  it('keeps a watched channel open across operations and turns unsolicited events into handle-event', async () => {
    await conn.start('vm');
    expect(peer.commands).toEqual(['qmp_capabilities', 'cont']);
    // The op waited for STOP itself: it is reported once, by suspend.
    await conn.suspend('vm');
    peer.emit('RESUME');
    await until(() => events.some((e) => e.kind === 'resumed'));
    expect((await conn.listDomains())[0]).toMatchObject({ state: 'running', reason: 'unpaused' });
    peer.emit('STOP');
    await until(() => events.filter((e) => e.kind === 'suspended').length === 2);
    expect(events.map((e) => `${e.kind}/${e.reason}`)).toEqual(['started/booted', 'suspended/user', 'resumed/unpaused', 'suspended/user']);
  });

  it('delivers unsolicited events while an exec runs in the domain: an exec does not hold its events back', async () => {
    peer.emit('RESUME');
    await until(() => events.at(-1)?.kind === 'resumed');
    let execDone = false;
    const long = conn.exec('vm', ['sleep', '1500']).then((r) => {
      execDone = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 100));
    peer.emit('STOP');
    await until(() => events.at(-1)?.kind === 'suspended', 1000);
    expect(execDone).toBe(false);
    expect(Buffer.from((await long).stdout).toString()).toBe('slept');
    peer.emit('RESUME');
    await until(() => events.at(-1)?.kind === 'resumed');
  });

  it('re-attaches active domains when a new host opens the node, and reports those whose peer died as crashed', async () => {
    const stateDir = tempDir();
    const first = await connect('io:///default', { host, stateDir });
    const before = peer.commands.length;
    await first.start('vm');
    await first.close();
    await host.close(); // the "manager" goes away; its channels with it

    host = await testHost({ pluginPaths: [fixture('io')], policy: { plugins: { 'virtkit-fixture-io': { grants: 'requested' } } }, stepTimeoutMs: 500 });
    io = await host.plugins.forScheme('io');
    peer.server.close();
    mkdirSync(join(io.runtimeDir, 'default'), { recursive: true });
    peer = new Peer(join(io.runtimeDir, 'default', 'peer.sock'));
    const second = await connect('io:///default', { host, stateDir });
    expect((await second.listDomains())[0]).toMatchObject({ name: 'vm', state: 'running' });
    expect(peer.commands).toEqual(['qmp_capabilities']);
    expect(before).toBeGreaterThan(0);
    await second.close();

    peer.server.close();
    const third = await connect('io:///default', { host, stateDir });
    const seen: DomainEvent[] = [];
    third.onEvent((e) => seen.push(e));
    expect((await third.listDomains({ all: true }))[0]).toMatchObject({ name: 'vm', state: 'shut-off', reason: 'crashed' });
    expect((await third.events({ since: 0 }).next()).value).toMatchObject({ kind: 'started' });
    await third.close();
    peer = new Peer(join(io.runtimeDir, 'default', 'peer.sock'));
    conn = await connect('io:///default', { host });
    conn.onEvent((e) => events.push(e));
    await conn.start('vm');
    events.length = 0;
  });

  it('after the watchdog replaces the worker, re-attaches watched domains: events keep flowing', async () => {
    const before = peer.commands.length;
    expect((await conn.reboot('vm').catch((e) => e)).code).toBe('TIMEOUT');
    await until(() => peer.commands.length > before); // re-attached: a new qmp_capabilities
    expect(peer.commands.slice(before)).toEqual(['qmp_capabilities']);
    const n = events.length;
    peer.emit('STOP');
    await until(() => events.length > n);
    expect(events.at(-1)).toMatchObject({ domain: 'vm', kind: 'suspended' });
  });

  it('reports the peer going away as a crash', async () => {
    peer.client!.destroy();
    await until(() => events.some((e) => e.kind === 'stopped'));
    expect(events.at(-1)).toMatchObject({ domain: 'vm', kind: 'stopped', reason: 'crashed' });
    expect((await conn.listDomains({ all: true }))[0]).toMatchObject({ state: 'shut-off', reason: 'crashed' });
  });
});
