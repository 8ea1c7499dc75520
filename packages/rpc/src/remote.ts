// Dialling a daemon from a URI: DRIVER+tls://HOST[:PORT]/PATH opens a mutually authenticated
// TLS channel to HOST:PORT and asks the daemon for the node DRIVER:///PATH;
// DRIVER+unix:///PATH[?socket=/abs/path.sock] does the same over the daemon's local socket.
//
// How the node is named: the hello carries one extra member, `node: "DRIVER:///PATH"`. The
// protocol otherwise stays as it is (serveConnection ignores members it does not know); a
// daemon that serves several nodes (virtkitd) reads that member from the first frame to pick
// the Connection it hands to serveConnection. The welcome names the node served; if it is not
// the one asked for (a server that ignores `node`), connectRemote fails with NO_SUPPORT.
import { accessSync, constants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { connect as connectLocal, parseUri, VirtkitError, type ConnectOptions, type DomainConnection } from '@virtkit/core';
import { connect as connectTls, connectUnix, defaultUnixSocketPaths } from '@virtkit/transport-tls';
import type { RpcChannel } from './channel.js';
import { openRemote, type RemoteConnection, type RemoteOptions } from './client.js';

/** The port virtkitd listens on when the URI names none. */
export const DEFAULT_DAEMON_PORT = 16515;

export interface ConnectRemoteOptions extends RemoteOptions {
  /** Paths of the PEM files: the CA certificate, this client's certificate and key (required for +tls, unused for +unix). */
  ca?: string;
  cert?: string;
  key?: string;
  /** TLS handshake bound (transport default 5 s). */
  tlsHandshakeTimeoutMs?: number;
}

/**
 * The local node URI a remote URI asks the daemon for: qemu+tls://h/system -> qemu:///system
 * (for +unix URIs, the `socket` parameter is the transport's and is dropped).
 */
export function nodeUriOf(uri: string): string {
  const p = parseUri(uri);
  const params = { ...p.params };
  if (p.transport === 'unix') delete params.socket;
  const query = new URLSearchParams(params).toString();
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
 * The socket a `DRIVER+unix:///PATH` URI without `socket=` dials: the admin socket of the
 * default directory if this user may write to it, else the read-only one.
 */
export function defaultUnixSocket(env: NodeJS.ProcessEnv = process.env): string {
  const { admin, readOnly } = defaultUnixSocketPaths(env);
  try {
    accessSync(admin, constants.W_OK);
    return admin;
  } catch {
    return readOnly;
  }
}

async function openUnix(uri: string, socket: string | undefined, opts: ConnectRemoteOptions): Promise<RemoteConnection> {
  if (socket !== undefined && (socket === '' || !isAbsolute(socket))) throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: socket must be an absolute path`);
  const path = socket ?? defaultUnixSocket();
  const node = nodeUriOf(uri);
  let channel: RpcChannel;
  try {
    channel = await connectUnix(path);
  } catch (e) {
    throw new VirtkitError('IO_ERROR', `cannot connect to the daemon at ${path}: ${(e as Error).message}`, { cause: e });
  }
  const remote = await openRemote(namingNode(channel, node), opts);
  if (remote.uri !== node) {
    remote.close();
    throw new VirtkitError('NO_SUPPORT', `the daemon at ${path} serves ${remote.uri}, not ${node}`);
  }
  return remote;
}

/**
 * Opens a RemoteConnection for `DRIVER+tls://HOST[:PORT]/PATH` (port default 16515) or
 * `DRIVER+unix:///PATH[?socket=/abs/path.sock]` (no certificates; default socket: see
 * defaultUnixSocket). Fails with a VirtkitError: INVALID_ARGUMENT for a URI without tls/unix,
 * a tls URI without host or PEM paths, a unix URI with a host or a relative socket; NOT_FOUND
 * for a missing PEM file, IO_ERROR when the daemon cannot be reached or drops the connection (a
 * client it does not accept included), the daemon's code when it refuses.
 */
export async function connectRemote(uri: string, opts: ConnectRemoteOptions = {}): Promise<RemoteConnection> {
  const p = parseUri(uri);
  if (p.transport === 'unix') {
    if (p.host) throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: a unix URI names no host (DRIVER+unix:///PATH)`);
    return openUnix(uri, p.params.socket, opts);
  }
  if (p.transport !== 'tls') throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: connectRemote needs a DRIVER+tls://HOST/PATH or DRIVER+unix:///PATH URI`);
  if (!p.host) throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: a tls URI needs a host`);
  if (opts.ca === undefined || opts.cert === undefined || opts.key === undefined) throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: a tls URI needs the ca, cert and key files`);
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

/**
 * One entry point for every URI: a node in this process (`test:///default`, `qemu:///system`:
 * @virtkit/core's connect) or one served by virtkitd (`qemu+tls://HOST[:PORT]/system` with
 * `ca`, `cert`, `key`; `qemu+unix:///system`). Both offer the same API, `DomainConnection`.
 */
export async function connect(uri: string, opts: ConnectRemoteOptions & ConnectOptions = {}): Promise<DomainConnection> {
  const p = parseUri(uri);
  if (p.transport === undefined && p.host === undefined) return connectLocal(uri, opts);
  return connectRemote(uri, opts);
}
