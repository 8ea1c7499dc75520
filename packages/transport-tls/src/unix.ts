// The local transport: the same frames over a unix-domain socket, like libvirt's admin and
// read-only sockets. Node offers no SO_PEERCRED, so the peer's identity is not read from the
// kernel: it is the identity the listener was given for the socket, and the socket file's mode
// (0600 for admin, 0666 for read-only) decides who may open it.
import { chmod, lstat, mkdir, realpath, unlink } from 'node:fs/promises';
import * as net from 'node:net';
import { basename, dirname, join } from 'node:path';
import { adoptChannel, type Channel, closeServer, DEFAULT_IDLE_TIMEOUT_MS, type PeerIdentity, serverGuards, SocketChannel } from './channel.js';
import { DEFAULT_MAX_FRAME_BYTES } from './framing.js';
import { TransportError } from './tls.js';

/** File name of the admin socket in the default directory. */
export const UNIX_ADMIN_SOCKET = 'virtkitd-admin.sock';
/** File name of the read-only socket in the default directory. */
export const UNIX_READ_ONLY_SOCKET = 'virtkitd-ro.sock';

/** /run/virtkit as root; else $XDG_RUNTIME_DIR/virtkit, or /tmp/virtkit-UID without it. */
export function defaultUnixSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  const uid = process.getuid?.();
  if (uid === 0) return '/run/virtkit';
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'virtkit');
  return `/tmp/virtkit-${uid ?? 'user'}`;
}

/** The default admin and read-only socket paths (see defaultUnixSocketDir). */
export function defaultUnixSocketPaths(env: NodeJS.ProcessEnv = process.env): { admin: string; readOnly: string } {
  const dir = defaultUnixSocketDir(env);
  return { admin: join(dir, UNIX_ADMIN_SOCKET), readOnly: join(dir, UNIX_READ_ONLY_SOCKET) };
}

export interface ListenUnixOptions {
  /** The socket file to create. */
  path: string;
  /** Its permission bits: 0o600 for an admin socket, 0o666 for a read-only one. */
  mode: number;
  /** The identity every channel of this socket gets (peer.subject.CN). */
  identity: string;
  maxFrameBytes?: number;
  /** Close a channel that has received no frame for this long; 0 disables. Default 30 000 ms. */
  idleTimeoutMs?: number;
  /** Called once per connection. A throw or rejection closes that channel. */
  onChannel(ch: Channel): void | Promise<void>;
}

export interface UnixListener {
  readonly path: string;
  /** Stop accepting, close every open channel, remove the socket file. */
  close(): Promise<void>;
}

export interface ConnectUnixOptions {
  maxFrameBytes?: number;
  idleTimeoutMs?: number;
  /** Give up connecting after this long. Default 5000 ms. */
  connectTimeoutMs?: number;
}

function checked(name: string, v: number | undefined, dflt: number, allowZero: boolean): number {
  const x = v ?? dflt;
  if (!Number.isFinite(x) || x < 0 || (!allowZero && x === 0)) throw new RangeError(`${name} must be a positive number, got ${x}`);
  return x;
}

/** Whether something accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(true); // accepted by the kernel but not answered: treat as alive
    }, 1_000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') resolve(false);
      else reject(new TransportError(e.code ?? 'EIO', `cannot tell whether ${path} is in use: ${e.message}`, { cause: e }));
    });
  });
}

/** Removes a socket file nothing listens on (left by a killed process); refuses anything else. */
async function removeStale(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new TransportError('EEXIST', `${path} exists and is not a socket: not replacing it`);
  if (await answers(path)) throw new TransportError('EADDRINUSE', `${path}: another process is listening on this socket`);
  await unlink(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ENOENT') throw e;
  });
}

/**
 * The socket's directory, and every directory above it, must be safe from other users: owned
 * by this process's user or root, and writable by no one else (a sticky directory such as /tmp
 * excepted: there only an entry's owner may rename it). Otherwise another user could rename our
 * socket, or a directory above it (a /tmp/virtkit-UID they made first), and listen in its place:
 * our clients would talk to them. Checked on the path with symlinks resolved; the socket is made
 * on that resolved path, so a symlink changed afterwards cannot move it.
 */
async function safeSocketDir(dir: string): Promise<string> {
  const real = await realpath(dir);
  const uid = process.getuid?.();
  for (let d = real; ; d = dirname(d)) {
    const st = await lstat(d);
    if (!st.isDirectory()) throw new TransportError('EINVAL', `${d} is not a directory: not listening under it`);
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) throw new TransportError('EPERM', `${d} belongs to uid ${st.uid}, not to this process (uid ${uid}): not listening under it`);
    if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) throw new TransportError('EPERM', `${d} is writable by others (mode ${(st.mode & 0o7777).toString(8)}): not listening under it`);
    if (d === dirname(d)) return real;
  }
}

/**
 * Listens on a unix-domain socket at `path` (its parent directory is created 0755 if missing,
 * and must belong to this user and be writable by no one else; a stale socket file is replaced) with permission bits `mode`; every connection becomes a
 * Channel whose peer is `{ subject: { CN: identity }, fingerprint256: '', authorized: true, transport: 'unix' }`.
 */
export async function listenUnix(opts: ListenUnixOptions): Promise<UnixListener> {
  const maxFrameBytes = checked('maxFrameBytes', opts.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES, false);
  const idleTimeoutMs = checked('idleTimeoutMs', opts.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, true);
  if (!Number.isInteger(opts.mode) || opts.mode < 0 || opts.mode > 0o777) throw new RangeError(`mode must be permission bits (0 to 0o777), got ${opts.mode}`);
  await mkdir(dirname(opts.path), { recursive: true, mode: 0o755 });
  const path = join(await safeSocketDir(dirname(opts.path)), basename(opts.path));
  await removeStale(path);

  const channels = new Set<SocketChannel>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const peer: PeerIdentity = { subject: { CN: opts.identity }, fingerprint256: '', authorized: true, transport: 'unix' };
    adoptChannel(new SocketChannel(socket, peer, { maxFrameBytes, idleTimeoutMs, ...serverGuards(maxFrameBytes) }), channels, opts.onChannel);
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    // The socket file gets its mode at creation (bind honours the umask), so no one outside
    // `mode` can connect before the chmod below; process.umask is unavailable in workers.
    let old: number | undefined;
    try {
      old = process.umask(0o777 & ~opts.mode);
    } catch {
      old = undefined;
    }
    try {
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      if (old !== undefined) process.umask(old);
    }
  });
  let ino: number | undefined;
  try {
    await chmod(path, opts.mode);
    ino = (await lstat(path)).ino;
  } catch (e) {
    server.close();
    throw e;
  }

  let closing: Promise<void> | undefined;
  return {
    path: opts.path,
    close() {
      closing ??= (async () => {
        await closeServer(server, channels, sockets);
        // node unlinks the socket on close; remove it if still there and still ours.
        try {
          if ((await lstat(path)).ino === ino) await unlink(path);
        } catch {
          // already gone
        }
      })();
      return closing;
    },
  };
}

/** Connects to a unix-domain socket and returns it as a Channel (peer: `{ subject: {}, transport: 'unix', ... }`). */
export function connectUnix(path: string, opts: ConnectUnixOptions = {}): Promise<Channel> {
  const maxFrameBytes = checked('maxFrameBytes', opts.maxFrameBytes, DEFAULT_MAX_FRAME_BYTES, false);
  const idleTimeoutMs = checked('idleTimeoutMs', opts.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS, true);
  const connectTimeoutMs = checked('connectTimeoutMs', opts.connectTimeoutMs, 5_000, false);
  return new Promise<Channel>((resolve, reject) => {
    let settled = false;
    const socket = net.createConnection(path);
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new TransportError('CONNECT_TIMEOUT', `connecting to ${path} did not complete in ${connectTimeoutMs} ms`)), connectTimeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => fail(new TransportError(err.code ?? 'CONNECT_FAILED', `${path}: ${err.message}`, { cause: err })));
    socket.once('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(new SocketChannel(socket, { subject: {}, fingerprint256: '', authorized: true, transport: 'unix' }, { maxFrameBytes, idleTimeoutMs }));
    });
  });
}
