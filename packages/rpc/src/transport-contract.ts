// The transport contract is WIT (wit/transport, virtkit:transport@0.1.0); its TypeScript types
// are generated into ./generated/transport by `pnpm gen`. Transports live in the host as
// TypeScript with an asynchronous projection of it (RpcChannel here, Channel and listen/connect
// in @virtkit/transport-tls). This module is compile-time only: it fails the build when the
// TypeScript side stops carrying what the contract says a transport must report.
import type { CloseReason, PeerIdentity } from '@virtkit/transport-tls';
import type { CloseReason as WitCloseReason, PeerIdentity as WitPeerIdentity } from './generated/transport/interfaces/virtkit-transport-types.js';
import type { RpcChannel } from './channel.js';

type Assert<T extends true> = T;
type Extends<A, B> = [A] extends [B] ? true : false;

/** A close reason as transport-tls reports it holds the contract's (remote: absent = false). */
export type CloseReasonConforms = Assert<Extends<CloseReason, Omit<WitCloseReason, 'remote'> & { remote?: boolean }>>;

/** The RPC layer reads the close reason in those terms too. */
export type RpcCloseReasonConforms = Assert<Extends<NonNullable<RpcChannel['closeReason']>, Pick<WitCloseReason, 'code' | 'message'>>>;

/** The contract's peer identity, from transport-tls's: every field has its counterpart. */
export function contractPeer(p: PeerIdentity): WitPeerIdentity {
  return {
    kind: p.transport === 'unix' ? 'local-socket' : 'certificate',
    subject: Object.entries(p.subject),
    fingerprintSha256: p.fingerprint256,
    authorized: p.authorized,
  };
}
