// Dialling a daemon from a URI: DRIVER+tls://HOST[:PORT]/PATH opens a mutually authenticated
// TLS channel to HOST:PORT and asks the daemon for the node DRIVER:///PATH.
//
// How the node is named: the hello carries one extra member, `node: "DRIVER:///PATH"`. The
// protocol otherwise stays as it is (serveConnection ignores members it does not know); a
// daemon that serves several nodes (virtkitd) reads that member from the first frame to pick
// the Connection it hands to serveConnection. The welcome names the node served; if it is not
// the one asked for (a server that ignores `node`), connectRemote fails with NO_SUPPORT.
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseUri, VirtkitError } from '@virtkit/core';
import { connect as connectTls } from '@virtkit/transport-tls';
import type { RpcChannel } from './channel.js';
import { openRemote, type RemoteConnection, type RemoteOptions } from './client.js';

/** The port virtkitd listens on when the URI names none. */
export const DEFAULT_DAEMON_PORT = 16515;

export interface ConnectRemoteOptions extends RemoteOptions {
  /** Paths of the PEM files: the CA certificate, this client's certificate and key. */
  ca: string;
  cert: string;
  key: string;
  /** TLS handshake bound (transport default 5 s). */
  tlsHandshakeTimeoutMs?: number;
}

/** The local node URI a remote URI asks the daemon for: qemu+tls://h/system -> qemu:///system. */
export function nodeUriOf(uri: string): string {
  const p = parseUri(uri);
  const query = new URLSearchParams(p.params).toString();
  return `${p.driver}://${p.path}${query ? `?${query}` : ''}`;
}

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VirtkitError(code === 'ENOENT' ? 'NOT_FOUND' : 'IO_ERROR', `cannot read the TLS ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
}

/** Wraps a channel so that the first frame sent (the hello) names the node wanted. */
function namingNode(channel: RpcChannel, node: string): RpcChannel {
  let first = true;
  return {
    get peer() {
      return channel.peer;
    },
    get frames() {
      return channel.frames;
    },
    get closeReason() {
      return channel.closeReason;
    },
    send(value: unknown) {
      if (first && value !== null && typeof value === 'object' && (value as { t?: unknown }).t === 'hello') {
        first = false;
        return channel.send({ ...(value as object), node });
      }
      first = false;
      return channel.send(value);
    },
    close: () => channel.close(),
  };
}

/**
 * Opens a RemoteConnection for `DRIVER+tls://HOST[:PORT]/PATH` (port default 16515). Fails
 * with a VirtkitError: INVALID_ARGUMENT for a URI without tls or host, NOT_FOUND for a missing
 * PEM file, IO_ERROR when the daemon cannot be reached or drops the connection (a client it
 * does not accept included), the daemon's code when it refuses.
 */
export async function connectRemote(uri: string, opts: ConnectRemoteOptions): Promise<RemoteConnection> {
  const p = parseUri(uri);
  if (p.transport !== 'tls') throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: connectRemote needs a DRIVER+tls://HOST/PATH URI`);
  if (!p.host) throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: a tls URI needs a host`);
  const node = nodeUriOf(uri);
  const [ca, cert, key] = await Promise.all([readPem(opts.ca, 'CA certificate'), readPem(opts.cert, 'client certificate'), readPem(opts.key, 'client key')]);
  const port = p.port ?? DEFAULT_DAEMON_PORT;
  let channel: RpcChannel;
  try {
    channel = await connectTls({ host: p.host, port, ...(isIP(p.host) ? {} : { servername: p.host }), ca, cert, key, ...(opts.tlsHandshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.tlsHandshakeTimeoutMs } : {}) });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new VirtkitError('IO_ERROR', `cannot connect to the daemon at ${p.host}:${port}: ${typeof code === 'string' && !(e as Error).message.startsWith(code) ? `${code}: ` : ''}${(e as Error).message}`, { cause: e });
  }
  const remote = await openRemote(namingNode(channel, node), opts);
  if (remote.uri !== node) {
    remote.close();
    throw new VirtkitError('NO_SUPPORT', `the daemon at ${p.host}:${port} serves ${remote.uri}, not ${node}`);
  }
  return remote;
}
