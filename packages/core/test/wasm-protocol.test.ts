import { describe, expect, it } from 'vitest';
import { coalescingPoster } from '../src/wasm/protocol.js';

type M = { t: string; n?: unknown };
const turn = () => new Promise<void>((r) => setImmediate(r));

describe('coalescingPoster', () => {
  it('posts the first message of a turn at once and the rest of that turn as one batch, in order', async () => {
    const posted: unknown[] = [];
    const post = coalescingPoster<M>((m) => posted.push(m), () => {});
    post({ t: 'a' });
    expect(posted).toEqual([{ t: 'a' }]);
    post({ t: 'b' });
    post({ t: 'c' });
    expect(posted).toHaveLength(1);
    await turn();
    expect(posted).toEqual([{ t: 'a' }, { t: 'batch', messages: [{ t: 'b' }, { t: 'c' }] }]);
    // A later turn starts over; a lone follower is posted as itself.
    post({ t: 'd' });
    post({ t: 'e' });
    await turn();
    expect(posted.slice(2)).toEqual([{ t: 'd' }, { t: 'e' }]);
  });

  it('a queued message that cannot be posted fails alone; the others of its batch go', async () => {
    const posted: unknown[] = [];
    const failed: unknown[] = [];
    const post = coalescingPoster<M>(
      (m) => {
        structuredClone(m); // throws for a function, as postMessage would
        posted.push(m);
      },
      (m) => failed.push(m.t),
    );
    post({ t: 'first' });
    post({ t: 'ok1' });
    post({ t: 'bad', n: () => 1 });
    post({ t: 'ok2' });
    await turn();
    expect(posted).toEqual([{ t: 'first' }, { t: 'ok1' }, { t: 'ok2' }]);
    expect(failed).toEqual(['bad']);
  });
});
