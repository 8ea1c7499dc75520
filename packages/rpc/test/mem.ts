// An in-memory channel pair, for what real TLS makes awkward to provoke (shared by the rpc tests).
import type { RpcChannel } from '../src/index.js';

export class Mem implements RpcChannel {
  peer = { subject: { CN: 'mem' } };
  other!: Mem;
  closeReason: { code: string; message: string } | undefined;
  private q: unknown[] = [];
  private wake?: () => void;
  private ended = false;
  async send(v: unknown) {
    if (this.ended) throw new Error('closed');
    this.other.deliver(JSON.parse(JSON.stringify(v)));
  }
  deliver(v: unknown) {
    this.q.push(v);
    this.wake?.();
  }
  close() {
    if (this.ended) return;
    this.ended = true;
    this.closeReason = { code: 'CLOSED', message: 'closed locally' };
    this.wake?.();
    this.other.end();
  }
  end() {
    this.ended = true;
    this.closeReason ??= { code: 'PEER_CLOSED', message: 'the peer closed the connection' };
    this.wake?.();
  }
  frames: AsyncIterable<unknown> = {
    [Symbol.asyncIterator]: () => ({
      next: async () => {
        while (this.q.length === 0 && !this.ended) await new Promise<void>((r) => (this.wake = r));
        if (this.q.length > 0) return { done: false, value: this.q.shift() };
        return { done: true, value: undefined };
      },
    }),
  };
}
export function pair(): [Mem, Mem] {
  const a = new Mem();
  const b = new Mem();
  a.other = b;
  b.other = a;
  return [a, b];
}
