import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { adoptChannel, type Channel, closeServer, DEFAULT_IDLE_TIMEOUT_MS, serverGuards, SocketChannel, TlsChannel } from './channel.js';
import { DEFAULT_MAX_FRAME_BYTES } from './framing.js';

/** Default time allowed from TCP accept/connect to a completed TLS handshake. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;

/** PEM text or bytes. */
export type Pem = string | Buffer;

export interface TlsCredentials {
  /** The CA certificate(s) that peers' certificates must chain to (PEM). Only these are trusted. */
  ca: Pem;
  /** This end's certificate (PEM), optionally followed by intermediates. */
  cert: Pem;
  /** This end's private key (PEM). */
  key: Pem;
}

export interface ChannelTuning {
  /** Abort a connection whose TLS handshake has not completed in this time. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** Largest frame payload accepted or sent. Default 16 MiB. */
  maxFrameBytes?: number;
  /**
   * Close a channel that has received no frame for this long; 0 disables. Default 30 000 ms.
   * Any received frame resets it; the RPC layer sends keepalive frames on quiet channels.
   */
  idleTimeoutMs?: number;
}

export interface ListenOptions extends TlsCredentials, ChannelTuning {
  /** A revocation list signed by the CA (PEM, e.g. `revokeCertificate`'s crl.pem): client certificates it lists are refused. */
  crl?: Pem;
  host: string;
  /** 0 picks a free port (see the returned `port`). */
  port: number;
  /** Called once per authenticated connection. A throw or rejection closes that channel. */
  onChannel(ch: Channel): void | Promise<void>;
}

export interface Listener {
  readonly port: number;
  /** Stop accepting, close every open channel and pending connection. */
  close(): Promise<void>;
}

export interface ConnectOptions extends TlsCredentials, ChannelTuning {
  host: string;
  port: number;
  /**
   * The name the server certificate must carry (and the SNI sent). Defaults to `host`; an IP
   * address is checked against the certificate's IP SANs.
   */
  servername?: string;
}

/** The connection failed before a channel was established. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

const TLS_MIN_VERSION = 'TLSv1.3' as const;

function positive(name: string, v: number | undefined, dflt: number, allowZero = false): number {
  const x = v ?? dflt;
  if (!Number.isFinite(x) || x < 0 || (!allowZero && x === 0)) throw new RangeError(`${name} must be a positive number, got ${x}`);
  return x;
}

/** Accept mutually authenticated TLS 1.3 connections and hand each one over as a Channel. */
export async function listen(opts: ListenOptions): Promise<Listener> {
  const handshakeTimeout = positive('handshakeTimeoutMs', opts.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS);
  const maxFrameBytes = positive('maxFrameBytes', opts.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  const idleTimeoutMs = positive('idleTimeoutMs', opts.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, true);

  const server = tls.createServer({
    ca: opts.ca,
    cert: opts.cert,
    key: opts.key,
    ...(opts.crl !== undefined ? { crl: opts.crl } : {}),
    minVersion: TLS_MIN_VERSION,
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout,
  });

  const rawSockets = new Set<Socket>();
  const channels = new Set<SocketChannel>();

  server.on('connection', (raw: Socket) => {
    rawSockets.add(raw);
    raw.on('close', () => rawSockets.delete(raw));
  });
  // Failed handshakes (bad or missing client certificate, handshake timeout, garbage instead
  // of TLS): node already destroys the socket; make sure of it and keep serving.
  server.on('tlsClientError', (_err, socket) => {
    socket.destroy();
  });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    if (!socket.authorized) {
      socket.destroy(); // unreachable with rejectUnauthorized, kept as a guard
      return;
    }
    adoptChannel(new TlsChannel(socket, { maxFrameBytes, idleTimeoutMs, ...serverGuards(maxFrameBytes) }), channels, opts.onChannel);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;

  let closing: Promise<void> | undefined;
  return {
    port,
    close() {
      closing ??= closeServer(server, channels, rawSockets);
      return closing;
    },
  };
}

/** Open a mutually authenticated TLS 1.3 connection and return it as a Channel. */
export function connect(opts: ConnectOptions): Promise<Channel> {
  const handshakeTimeoutMs = positive('handshakeTimeoutMs', opts.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS);
  const maxFrameBytes = positive('maxFrameBytes', opts.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES);
  const idleTimeoutMs = positive('idleTimeoutMs', opts.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, true);

  return new Promise<Channel>((resolve, reject) => {
    let settled = false;
    const socket = tls.connect({
      host: opts.host,
      port: opts.port,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      // Only set when given: node rejects IP addresses as SNI; the identity check then uses host.
      ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
      minVersion: TLS_MIN_VERSION,
      rejectUnauthorized: true,
      // checkServerIdentity: node's default (tls.checkServerIdentity) verifies the name/IP.
    });
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => {
      fail(new TransportError('HANDSHAKE_TIMEOUT', `TLS handshake with ${opts.host}:${opts.port} did not complete in ${handshakeTimeoutMs} ms`));
    }, handshakeTimeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      fail(new TransportError(err.code ?? 'CONNECT_FAILED', err.message, { cause: err }));
    });
    socket.on('close', () => {
      fail(new TransportError('CONNECT_FAILED', `connection to ${opts.host}:${opts.port} closed during the TLS handshake`));
    });
    socket.once('secureConnect', () => {
      if (settled) return;
      if (!socket.authorized) {
        fail(new TransportError('UNAUTHORIZED', `server certificate rejected: ${String(socket.authorizationError)}`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve(new TlsChannel(socket, { maxFrameBytes, idleTimeoutMs }));
    });
  });
}
