// The virtkitd config file: read, defaults filled in, every field checked (errors name it).
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseUri, VirtkitError, type HostOptions } from '@virtkit/core';
import { defaultUnixSocketPaths } from '@virtkit/transport-tls';

export type Role = 'read-only' | 'operator' | 'admin';
export const ROLES: readonly Role[] = ['read-only', 'operator', 'admin'];

export interface IdentityRule {
  match: { cn?: string; fingerprint256?: string };
  role: Role;
  /** For operators: the domains (a glob: * and ?) whose lifecycle they may drive. Default *. */
  domains?: string;
}

export interface DaemonConfig {
  /** The file read (undefined: none, all defaults). */
  file?: string;
  /** TLS listeners; may be empty when a unix socket is enabled. */
  listen: { host: string; port: number }[];
  /** The local sockets (false: disabled): admin (mode 0600, admin role) and read-only (0666, read-only role). */
  unix: { admin: string | false; readOnly: string | false };
  /** crl: a revocation list of the CA; `required` when the config names it, else used if present. */
  pki: { ca: string; cert: string; key: string; crl: { path: string; required: boolean } };
  host: Pick<HostOptions, 'stateRoot' | 'runtimeRoot' | 'cacheDir' | 'pluginPaths' | 'policy' | 'stepTimeoutMs'>;
  access: { identities: IdentityRule[] };
  limits: { maxFrameBytes?: number; handshakeTimeoutMs?: number; idleTimeoutMs?: number; maxCallsPerConnection?: number };
  /** Local node URIs (DRIVER:///PATH) opened at start; their autostart domains are started. */
  nodes: string[];
}

export const DEFAULT_PORT = 16515;

const isRoot = () => process.getuid?.() === 0;

/** /etc/virtkit/virtkitd.json as root, else ~/.config/virtkit/virtkitd.json ($XDG_CONFIG_HOME honoured). */
export function defaultConfigPath(): string {
  if (isRoot()) return '/etc/virtkit/virtkitd.json';
  return join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'virtkit', 'virtkitd.json');
}

/** The `virtkit pki` default directory: /etc/virtkit/pki as root, else ~/.config/virtkit/pki. */
export function defaultPkiDir(): string {
  return isRoot() ? '/etc/virtkit/pki' : join(homedir(), '.config', 'virtkit', 'pki');
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Reads and checks a config file. `explicit`: the path was given (--config), so it must exist. */
export async function loadDaemonConfig(path: string, explicit: boolean): Promise<DaemonConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return parseDaemonConfig({}, undefined);
    throw new VirtkitError('NOT_FOUND', `config ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new VirtkitError('INVALID_CONFIG', `config ${path} is not JSON: ${(e as Error).message}`);
  }
  return parseDaemonConfig(doc, resolve(path));
}

/** Checks a parsed config document; relative paths are resolved against the file's directory. */
export function parseDaemonConfig(doc: unknown, file: string | undefined): DaemonConfig {
  const where = file ? `config ${file}` : 'config';
  const bad = (pointer: string, message: string) => new VirtkitError('INVALID_CONFIG', `${where}: ${pointer || '/'}: ${message}`, { fields: [{ pointer, message }] });
  const base = file ? dirname(resolve(file)) : process.cwd();
  const known = (o: Obj, at: string, keys: string[]) => {
    for (const k of Object.keys(o)) if (!keys.includes(k)) throw bad(`${at}/${k}`, `unknown property (known: ${keys.join(', ')})`);
  };
  const obj = (v: unknown, at: string): Obj => {
    if (v === undefined) return {};
    if (!isObj(v)) throw bad(at, 'must be an object');
    return v;
  };
  const path = (v: unknown, at: string): string => {
    if (typeof v !== 'string' || v === '' || v.includes('\0')) throw bad(at, 'must be a non-empty path');
    return isAbsolute(v) ? v : resolve(base, v);
  };
  const int = (v: unknown, at: string, min: number, max: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(at, `must be an integer from ${min} to ${max}`);
    return v;
  };

  const c = obj(doc, '');
  known(c, '', ['listen', 'unix', 'pki', 'host', 'access', 'limits', 'nodes']);

  let listen: DaemonConfig['listen'] = [{ host: '127.0.0.1', port: DEFAULT_PORT }];
  if (c.listen !== undefined) {
    if (!Array.isArray(c.listen)) throw bad('/listen', 'must be a list of {host, port}');
    listen = c.listen.map((l, i) => {
      const at = `/listen/${i}`;
      const o = obj(l, at);
      if (!isObj(l)) throw bad(at, 'must be an object');
      known(o, at, ['host', 'port']);
      if (typeof o.host !== 'string' || o.host === '') throw bad(`${at}/host`, 'must be a host name or address');
      return { host: o.host, port: o.port === undefined ? DEFAULT_PORT : int(o.port, `${at}/port`, 0, 65535) };
    });
  }

  const u = obj(c.unix, '/unix');
  known(u, '/unix', ['admin', 'readOnly']);
  const sockets = defaultUnixSocketPaths();
  const sock = (v: unknown, at: string, dflt: string): string | false => {
    if (v === undefined) return dflt;
    if (v === false) return false;
    if (typeof v !== 'string') throw bad(at, 'must be a socket path or false');
    return path(v, at);
  };
  const unix: DaemonConfig['unix'] = { admin: sock(u.admin, '/unix/admin', sockets.admin), readOnly: sock(u.readOnly, '/unix/readOnly', sockets.readOnly) };
  if (unix.admin !== false && unix.admin === unix.readOnly) throw bad('/unix/readOnly', 'must differ from /unix/admin');
  if (listen.length === 0 && unix.admin === false && unix.readOnly === false) throw bad('/listen', 'is empty and both unix sockets are disabled: nothing to listen on');

  const p = obj(c.pki, '/pki');
  known(p, '/pki', ['ca', 'cert', 'key', 'crl']);
  const dir = defaultPkiDir();
  const ca = p.ca === undefined ? join(dir, 'ca-cert.pem') : path(p.ca, '/pki/ca');
  const pki = {
    ca,
    cert: p.cert === undefined ? join(dir, 'server-cert.pem') : path(p.cert, '/pki/cert'),
    key: p.key === undefined ? join(dir, 'server-key.pem') : path(p.key, '/pki/key'),
    // By default, the crl.pem beside the CA certificate (where `virtkit pki revoke-client --dir`
    // writes it), wherever pki.ca points.
    crl: p.crl === undefined ? { path: join(dirname(ca), 'crl.pem'), required: false } : { path: path(p.crl, '/pki/crl'), required: true },
  };

  const h = obj(c.host, '/host');
  known(h, '/host', ['stateRoot', 'runtimeRoot', 'cacheDir', 'pluginPaths', 'policy', 'stepTimeoutMs']);
  const host: DaemonConfig['host'] = {};
  for (const k of ['stateRoot', 'runtimeRoot', 'cacheDir', 'policy'] as const) if (h[k] !== undefined) host[k] = path(h[k], `/host/${k}`);
  if (h.pluginPaths !== undefined) {
    if (!Array.isArray(h.pluginPaths)) throw bad('/host/pluginPaths', 'must be a list of paths');
    host.pluginPaths = h.pluginPaths.map((v, i) => path(v, `/host/pluginPaths/${i}`));
  }
  if (h.stepTimeoutMs !== undefined) host.stepTimeoutMs = int(h.stepTimeoutMs, '/host/stepTimeoutMs', 1, 3_600_000);

  const a = obj(c.access, '/access');
  known(a, '/access', ['identities']);
  const identities: IdentityRule[] = [];
  if (a.identities !== undefined) {
    if (!Array.isArray(a.identities)) throw bad('/access/identities', 'must be a list of {match, role, domains?}');
    a.identities.forEach((r, i) => {
      const at = `/access/identities/${i}`;
      if (!isObj(r)) throw bad(at, 'must be an object');
      known(r, at, ['match', 'role', 'domains']);
      if (!isObj(r.match)) throw bad(`${at}/match`, 'must be an object with cn and/or fingerprint256');
      known(r.match, `${at}/match`, ['cn', 'fingerprint256']);
      const { cn, fingerprint256 } = r.match;
      if (cn === undefined && fingerprint256 === undefined) throw bad(`${at}/match`, 'must name cn and/or fingerprint256');
      if (cn !== undefined && (typeof cn !== 'string' || cn === '')) throw bad(`${at}/match/cn`, 'must be a non-empty string');
      if (fingerprint256 !== undefined && (typeof fingerprint256 !== 'string' || !/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/.test(fingerprint256))) {
        throw bad(`${at}/match/fingerprint256`, 'must be a SHA-256 fingerprint AB:CD:... (32 bytes, as `virtkit pki` prints it)');
      }
      if (!ROLES.includes(r.role as Role)) throw bad(`${at}/role`, `must be one of ${ROLES.join(', ')}`);
      if (r.domains !== undefined) {
        if (typeof r.domains !== 'string' || r.domains === '') throw bad(`${at}/domains`, 'must be a glob (* and ?)');
        if (r.role !== 'operator') throw bad(`${at}/domains`, 'only applies to the operator role');
      }
      identities.push({
        match: { ...(cn !== undefined ? { cn: cn as string } : {}), ...(fingerprint256 !== undefined ? { fingerprint256: (fingerprint256 as string).toUpperCase() } : {}) },
        role: r.role as Role,
        ...(r.domains !== undefined ? { domains: r.domains as string } : {}),
      });
    });
  }

  const l = obj(c.limits, '/limits');
  known(l, '/limits', ['maxFrameBytes', 'handshakeTimeoutMs', 'idleTimeoutMs', 'maxCallsPerConnection']);
  const limits: DaemonConfig['limits'] = {};
  // At least 32 KiB: a stream data frame (16 KiB of bytes, base64 in JSON) must fit.
  if (l.maxFrameBytes !== undefined) limits.maxFrameBytes = int(l.maxFrameBytes, '/limits/maxFrameBytes', 32 * 1024, 1024 * 1024 * 1024);
  if (l.handshakeTimeoutMs !== undefined) limits.handshakeTimeoutMs = int(l.handshakeTimeoutMs, '/limits/handshakeTimeoutMs', 1, 600_000);
  if (l.idleTimeoutMs !== undefined) limits.idleTimeoutMs = int(l.idleTimeoutMs, '/limits/idleTimeoutMs', 0, 86_400_000);
  if (l.maxCallsPerConnection !== undefined) limits.maxCallsPerConnection = int(l.maxCallsPerConnection, '/limits/maxCallsPerConnection', 1, 100_000);

  const nodes: string[] = [];
  if (c.nodes !== undefined) {
    if (!Array.isArray(c.nodes)) throw bad('/nodes', 'must be a list of node URIs (DRIVER:///PATH)');
    c.nodes.forEach((v, i) => {
      const at = `/nodes/${i}`;
      if (typeof v !== 'string' || v === '') throw bad(at, 'must be a node URI (DRIVER:///PATH)');
      let parsed;
      try {
        parsed = parseUri(v);
      } catch (e) {
        throw bad(at, (e as Error).message);
      }
      if (parsed.transport || parsed.host) throw bad(at, `${v} is not a local node: name it as DRIVER:///PATH (no +transport, no host)`);
      if (nodes.includes(v)) throw bad(at, `${v} is listed twice`);
      nodes.push(v);
    });
  }

  return { file, listen, unix, pki, host, access: { identities }, limits, nodes };
}
