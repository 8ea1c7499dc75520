// The transport contract (wit/transport): what a real transport reports maps onto it. The
// compile-time half is src/transport-contract.ts; this is the run-time half, over a real
// unix socket of @virtkit/transport-tls.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { connectUnix, listenUnix, type Channel } from '@virtkit/transport-tls';
import { describe, expect, it } from 'vitest';
import { contractPeer } from '../src/transport-contract.js';

describe('transport contract', () => {
  it('a unix-socket channel reports a local-socket peer named by its socket, frames in order', async () => {
    const path = join(mkdtempSync('/tmp/vk-'), 'admin.sock');
    let accept!: (ch: Channel) => void;
    const accepted = new Promise<Channel>((resolve) => (accept = resolve));
    const listener = await listenUnix({ path, mode: 0o600, identity: 'local-admin', onChannel: (ch) => accept(ch) });
    const client = await connectUnix(path);
    const server = await accepted;
    expect(contractPeer(server.peer)).toEqual({ kind: 'local-socket', subject: [['CN', 'local-admin']], fingerprintSha256: '', authorized: true });
    await client.send({ n: 1 });
    await client.send({ n: 2 });
    const got: unknown[] = [];
    for await (const f of server.frames) {
      got.push(f);
      if (got.length === 2) break;
    }
    expect(got).toEqual([{ n: 1 }, { n: 2 }]);
    client.close();
    await listener.close();
  });
});

