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

  /**
   * A listener answering every frame (not awaited, as the rpc server answers concurrent calls
   * and pings) and a raw client that writes `batches` of `frame` and never reads; resolves with
   * the listener channel's close reason.
   */
  async function deafPeer(name: string, answer: (m: unknown) => unknown, frame: unknown, batches: number, perBatch: number, maxFrameBytes?: number) {
    const path = join(tmp, name);
    let closed: ((r: unknown) => void) | undefined;
    const reason = new Promise<{ code: string; message: string }>((r) => (closed = r as (r: unknown) => void));
    const l = await listenUnix({
      path,
      mode: 0o600,
      identity: 'x',
      ...(maxFrameBytes ? { maxFrameBytes } : {}),
      async onChannel(ch) {
        (ch as unknown as { on(e: string, f: (r: unknown) => void): void }).on('close', (r) => closed!(r));
        for await (const m of ch.frames) void ch.send(answer(m)).catch(() => {});
      },
    });
    const raw = createConnection(path);
    raw.pause(); // never reads
    raw.on('error', () => {}); // EPIPE once the server gave up on it
    await once(raw, 'connect');
    const json = Buffer.from(JSON.stringify(frame));
    const one = Buffer.concat([Buffer.from([0, 0, 0, 0]), json]);
    one.writeUInt32BE(json.length);
    for (let i = 0; i < batches && !raw.destroyed; i++) {
      raw.write(Buffer.concat(Array.from({ length: perBatch }, () => one)));
      await new Promise((r) => setTimeout(r, 2));
    }
    const r = await reason;
    raw.destroy();
    await l.close();
    return r;
  }

  it('closes the channel of a peer that sends without reading what it is sent (PEER_NOT_READING)', async () => {
    const r = await deafPeer('deaf.sock', (m) => ({ echo: m, pad: 'x'.repeat(60 * 1024) }), { hi: 1 }, 200, 10, 64 * 1024);
    expect(r).toMatchObject({ code: 'PEER_NOT_READING' });
  });

  it('also counts frames: a flood of small answers unread is cut off (each held frame costs far more than its bytes)', async () => {
    const r = await deafPeer('pings.sock', (m) => ({ pong: m }), { t: 'ping', n: 1 }, 400, 500);
    expect(r.code).toBe('PEER_NOT_READING');
    // The frame count tripped, well under the byte bound.
    const [, frames, bytes] = /left (\d+) frames \((\d+) bytes\)/.exec(r.message)!;
    expect(Number(frames)).toBe(4096);
    expect(Number(bytes)).toBeLessThan(2 * 16 * 1024 * 1024);
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
