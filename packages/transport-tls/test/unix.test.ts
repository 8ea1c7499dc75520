import { lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
