// What the protocol needs from a transport: any framed, ordered, bidirectional channel.
// @virtkit/transport-tls's Channel satisfies it; so can a unix socket or an in-memory pair.

export interface RpcChannel {
  /** The authenticated identity of the other end (passed to the server's authorize hook). */
  readonly peer: unknown;
  send(value: unknown): Promise<void>;
  /** Optional: send JSON text already serialised (one JSON value), as send would have made it. */
  sendJson?(json: string): Promise<void>;
  /** Received frames in order; ends when the channel closes. Iterated once. */
  readonly frames: AsyncIterable<unknown>;
  close(): void;
  /** Optional: why the channel closed, for error messages. */
  readonly closeReason?: { code: string; message: string } | undefined;
}
