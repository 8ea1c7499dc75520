import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Channel, connectUnix, defaultUnixSocketPaths, listenUnix } from '../src/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'vk-unix-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('unix transport', () => {
  it('carries frames, names the peer by the socket identity, sets the mode', async () => {
    const path = join(tmp, 'new', 'a.sock');
    const seen: Channel[] = [];
    const l = await listenUnix({
      path,
      mode: 0o600,
      identity: 'local-admin',
      async onChannel(ch) {
        seen.push(ch);
        for await (const m of ch.frames) await ch.send({ echo: m });
      },
    });
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    const ch = await connectUnix(path);
    expect(ch.peer.transport).toBe('unix');
    await ch.send({ hi: 1 });
    const it = ch.frames[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual({ echo: { hi: 1 } });
    expect(seen[0]!.peer).toEqual({ subject: { CN: 'local-admin' }, fingerprint256: '', authorized: true, transport: 'unix' });
    ch.close();
    await l.close();
    expect(() => lstatSync(path)).toThrow();
  });

  it('refuses to replace a file that is not a socket, or a live socket', async () => {
    const file = join(tmp, 'plain');
    writeFileSync(file, 'x');
    await expect(listenUnix({ path: file, mode: 0o666, identity: 'x', onChannel() {} })).rejects.toThrow(/not a socket/);
    const path = join(tmp, 'live.sock');
    const l = await listenUnix({ path, mode: 0o666, identity: 'x', onChannel() {} });
    expect(lstatSync(path).mode & 0o777).toBe(0o666);
    await expect(listenUnix({ path, mode: 0o666, identity: 'x', onChannel() {} })).rejects.toThrow(/another process is listening/);
    await l.close();
  });

  it('refuses a socket directory another user owns, or that others may write', async () => {
    const theirs = join(tmp, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, 65534, 65534); // as an attacker would have made /tmp/virtkit-UID first
    await expect(listenUnix({ path: join(theirs, 'a.sock'), mode: 0o600, identity: 'x', onChannel() {} })).rejects.toThrow(/belongs to uid 65534, not to this process/);
    const open = join(tmp, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await expect(listenUnix({ path: join(open, 'a.sock'), mode: 0o600, identity: 'x', onChannel() {} })).rejects.toThrow(/is writable by others \(mode 777\)/);
    // Any directory above counts: theirs/run is ours, but they could rename it away.
    mkdirSync(join(theirs, 'run'));
    await expect(listenUnix({ path: join(theirs, 'run', 'a.sock'), mode: 0o600, identity: 'x', onChannel() {} })).rejects.toThrow(/theirs belongs to uid 65534/);
    // Through a symlink: the resolved directories are checked.
    symlinkSync(theirs, join(tmp, 'link'));
    await expect(listenUnix({ path: join(tmp, 'link', 'run', 'a.sock'), mode: 0o600, identity: 'x', onChannel() {} })).rejects.toThrow(/theirs belongs to uid 65534/);
  });

  it('closes the channel of a peer that sends without reading what it is sent (PEER_NOT_READING)', async () => {
    const path = join(tmp, 'deaf.sock');
    let closed: ((r: unknown) => void) | undefined;
    const reason = new Promise((r) => (closed = r));
    const l = await listenUnix({
      path,
      mode: 0o600,
      identity: 'x',
      maxFrameBytes: 64 * 1024,
      async onChannel(ch) {
        (ch as unknown as { on(e: string, f: (r: unknown) => void): void }).on('close', (r) => closed!(r));
        // Each frame in gets a big answer out, which the peer never reads (not awaited: as the
        // rpc server answers concurrent calls and pings).
        for await (const m of ch.frames) void ch.send({ echo: m, pad: 'x'.repeat(60 * 1024) }).catch(() => {});
      },
    });
    const raw = createConnection(path);
    raw.pause(); // never reads
    raw.on('error', () => {}); // EPIPE once the server gave up on it
    await once(raw, 'connect');
    const frame = Buffer.from(JSON.stringify({ hi: 1 }));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(frame.length);
    for (let i = 0; i < 2000 && !raw.destroyed; i++) {
      raw.write(Buffer.concat([header, frame]));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    expect(await reason).toMatchObject({ code: 'PEER_NOT_READING' });
    raw.destroy();
    await l.close();
  });

  it('also counts frames: a flood of small answers unread is cut off (each held frame costs far more than its bytes)', async () => {
    const path = join(tmp, 'pings.sock');
    let closed: ((r: unknown) => void) | undefined;
    const reason = new Promise((r) => (closed = r));
    const l = await listenUnix({
      path,
      mode: 0o600,
      identity: 'x',
      async onChannel(ch) {
        (ch as unknown as { on(e: string, f: (r: unknown) => void): void }).on('close', (r) => closed!(r));
        for await (const m of ch.frames) void ch.send({ pong: m }).catch(() => {});
      },
    });
    const raw = createConnection(path);
    raw.pause();
    raw.on('error', () => {});
    await once(raw, 'connect');
    const frame = Buffer.from(JSON.stringify({ t: 'ping', n: 1 }));
    const one = Buffer.concat([Buffer.from([0, 0, 0, frame.length]), frame]);
    for (let i = 0; i < 400 && !raw.destroyed; i++) {
      raw.write(Buffer.concat(Array.from({ length: 500 }, () => one)));
      await new Promise((r) => setTimeout(r, 2));
    }
    const r = (await reason) as { code: string; message: string };
    expect(r.code).toBe('PEER_NOT_READING');
    // The frame count tripped, well under the byte bound.
    const [, frames, bytes] = /left (\d+) frames \((\d+) bytes\)/.exec(r.message)!;
    expect(Number(frames)).toBe(4096);
    expect(Number(bytes)).toBeLessThan(2 * 16 * 1024 * 1024);
    raw.destroy();
    await l.close();
  });

  it('fails to connect to a missing socket with its errno code', async () => {
    await expect(connectUnix(join(tmp, 'none.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('defaults to $XDG_RUNTIME_DIR/virtkit or /tmp/virtkit-UID for non-root', () => {
    if (process.getuid?.() === 0) {
      expect(defaultUnixSocketPaths({}).admin).toBe('/run/virtkit/virtkitd-admin.sock');
      return;
    }
    expect(defaultUnixSocketPaths({ XDG_RUNTIME_DIR: '/run/user/5' })).toEqual({ admin: '/run/user/5/virtkit/virtkitd-admin.sock', readOnly: '/run/user/5/virtkit/virtkitd-ro.sock' });
    expect(defaultUnixSocketPaths({}).readOnly).toBe(`/tmp/virtkit-${process.getuid!()}/virtkitd-ro.sock`);
  });
});
