/** @module Interface virtkit:transport/types@0.1.0 **/
/**
 * How the peer was authenticated.
 * # Variants
 * 
 * ## `"certificate"`
 * 
 * A client certificate that verified against the configured CA (mutual TLS).
 * ## `"local-socket"`
 * 
 * A local unix socket: which socket was opened (admin or read-only) is the identity.
 */
export type PeerKind = 'certificate' | 'local-socket';
export interface PeerIdentity {
  kind: PeerKind,
  /**
   * Certificate subject fields (e.g. CN, O; multi-valued fields joined with ", "); for a
   * local socket, CN names the socket's identity.
   */
  subject: Array<[string, string]>,
  /**
   * SHA-256 fingerprint of the peer certificate, "AB:CD:..."; empty for a local socket.
   */
  fingerprintSha256: string,
  /**
   * The certificate chain verified (always true on an open channel).
   */
  authorized: boolean,
}
/**
 * Why a channel closed, or why it could not open. Codes: FRAME_TOO_LARGE, BAD_FRAME,
 * IDLE_TIMEOUT, HANDSHAKE_TIMEOUT, CLOSED (closed here), PEER_CLOSED, or the TLS
 * library's own code (a refused certificate, ...).
 */
export interface CloseReason {
  code: string,
  message: string,
  /**
   * Reported by the peer in its close notice.
   */
  remote: boolean,
}

export class Channel {
  /**
   * This type does not have a public constructor.
   */
  private constructor();
  /**
  * TS: `readonly peer`.
  */
  peer(): PeerIdentity;
  /**
  * Sends one frame. TS: `send(value): Promise<void>`.
  */
  send(frame: string): void;
  /**
  * The next frame in order; none once the channel closed cleanly.
  * TS: `frames: AsyncIterable<unknown>` (iterated once).
  */
  receive(): string | undefined;
  /**
  * Closes (idempotent). TS: `close()`, then `closeReason` says why it closed.
  */
  close(): void;
}

export class Listener {
  /**
   * This type does not have a public constructor.
   */
  private constructor();
  accept(): Channel;
  close(): void;
}
