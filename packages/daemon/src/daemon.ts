// virtkitd: TLS listeners and the local unix sockets, one core Connection per node (opened on first use), each channel
// served with rpc's serveConnection under the access policy.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, Host, parseUri, VirtkitError, type Connection } from '@virtkit/core';
import { serveConnection, type RpcChannel } from '@virtkit/rpc';
import { checkCrl, listen, listenUnix, type Channel } from '@virtkit/transport-tls';
import type { DaemonConfig, IdentityRule } from './config.js';
import type { Logger } from './log.js';
import { authorizer, ruleFor } from './policy.js';

/** The package directory: plugins are looked up in its node_modules (and its parents'). */
export const DAEMON_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));
const codeOf = (e: unknown) => (VirtkitError.is(e) ? e.code : 'INTERNAL');

/** Which local socket a channel came in on; its rule is synthetic (the socket's mode is the check). */
type UnixKind = 'admin' | 'read-only';
const UNIX_SOCKETS: Record<UnixKind, { mode: number; identity: string; rule: IdentityRule }> = {
  admin: { mode: 0o600, identity: 'unix-admin', rule: { match: { cn: 'unix-admin' }, role: 'admin' } },
  'read-only': { mode: 0o666, identity: 'unix-read-only', rule: { match: { cn: 'unix-read-only' }, role: 'read-only' } },
};

/** call-denied lines per session; the rest are counted in its peer-closed line (deniedCalls). */
const LOGGED_DENIALS = 20;
/** What a peer wrote, for a log line or a message: bounded. */
const clip = (v: string, n = 256) => (v.length > n ? `${v.slice(0, n)}...` : v);

export class Daemon {
  private host?: Host;
  private listeners: { close(): Promise<void> }[] = [];
  private nodes = new Map<string, Promise<Connection>>();
  private stopping?: Promise<void>;

  constructor(
    private readonly config: DaemonConfig,
    private readonly log: Logger,
  ) {}

  /** Loads the plugins and the certificates, then listens on every configured address and socket. */
  async start(): Promise<{ host: string; port: number }[]> {
    const { pki, limits, unix } = this.config;
    const read = async (path: string, what: string) => {
      try {
        return await readFile(path);
      } catch (e) {
        throw new VirtkitError('NOT_FOUND', `cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? messageOf(e)}`);
      }
    };
    // Without TLS listeners (local sockets only) no certificate is needed.
    const [ca, cert, key] = this.config.listen.length === 0 ? [] : await Promise.all([read(pki.ca, 'CA certificate (pki.ca)'), read(pki.cert, 'server certificate (pki.cert)'), read(pki.key, 'server key (pki.key)')]);
    // The revocation list (`virtkit pki revoke-client`): named in the config, it must be there;
    // by default, the crl.pem beside the CA certificate is used when present.
    const crl = this.config.listen.length === 0 || (!pki.crl.required && !existsSync(pki.crl.path)) ? undefined : await read(pki.crl.path, 'revocation list (pki.crl)');
    if (crl) {
      // A CRL OpenSSL would reject (expired, another CA's) refuses every client silently: refuse to start instead.
      try {
        await checkCrl(crl, ca!);
      } catch (e) {
        throw new VirtkitError('INVALID_CONFIG', `the revocation list ${pki.crl.path} (pki.crl) cannot be used: ${messageOf(e)}`);
      }
      this.log('info', 'crl', { path: pki.crl.path });
    }
    this.host = await new Host({
      ...this.config.host,
      pluginSearch: [DAEMON_DIR],
      onLog: (plugin, level, message) => this.log(level === 'error' ? 'error' : level === 'warn' ? 'warn' : 'info', 'plugin-log', { plugin, pluginLevel: level, message }),
    }).init();
    const bound: { host: string; port: number }[] = [];
    try {
      for (const l of this.config.listen) {
        const listener = await listen({ host: l.host, port: l.port, ca: ca!, cert: cert!, key: key!, ...(crl ? { crl } : {}), ...limits, onChannel: (ch) => this.serveSafely(ch) });
        this.listeners.push(listener);
        bound.push({ host: l.host, port: listener.port });
        this.log('info', 'listen', { host: l.host, port: listener.port });
      }
      for (const [kind, path] of [['admin', unix.admin], ['read-only', unix.readOnly]] as const) {
        if (path === false) continue;
        const s = UNIX_SOCKETS[kind];
        const listener = await listenUnix({
          path,
          mode: s.mode,
          identity: s.identity,
          ...(limits.maxFrameBytes !== undefined ? { maxFrameBytes: limits.maxFrameBytes } : {}),
          ...(limits.idleTimeoutMs !== undefined ? { idleTimeoutMs: limits.idleTimeoutMs } : {}),
          onChannel: (ch) => this.serveSafely(ch, kind),
        });
        this.listeners.push(listener);
        this.log('info', 'listen', { unix: path, socket: kind, mode: `0${s.mode.toString(8)}` });
      }
    } catch (e) {
      await this.stop();
      throw new VirtkitError('IO_ERROR', `cannot listen: ${messageOf(e)}`, { cause: e });
    }
    // The configured nodes, one after the other: a node that fails to open or a domain
    // that fails to start is logged, and the daemon goes on.
    for (const uri of this.config.nodes) {
      if (this.stopping) break;
      await this.autostart(uri);
    }
    return bound;
  }

  /**
   * Opens a configured node (core re-attaches its running domains at connect), then starts
   * each of its domains marked autostart that is not active, as libvirtd does.
   */
  private async autostart(uri: string): Promise<void> {
    let conn: Connection;
    try {
      conn = await this.node(uri);
    } catch {
      return; // node-open-failed is logged by node()
    }
    let domains;
    try {
      domains = await conn.listDomains({ all: true });
    } catch (e) {
      this.log('warn', 'autostart-failed', { node: uri, domain: null, code: codeOf(e), message: `cannot list the domains: ${messageOf(e)}` });
      return;
    }
    for (const d of domains) {
      // Inactive as far as the summary tells: a crashed domain whose QEMU still runs is
      // refused by start (logged as autostart-failed).
      if (!d.autostart || !['shut-off', 'no-state', 'crashed'].includes(d.state)) continue;
      if (this.stopping) return;
      try {
        await conn.start(d.name);
        this.log('info', 'autostart', { node: uri, domain: d.name });
      } catch (e) {
        this.log('warn', 'autostart-failed', { node: uri, domain: d.name, code: codeOf(e), message: messageOf(e) });
      }
    }
  }

  /** Whether a peer may ask for this node (see serve). */
  private serves(raw: string, p: ReturnType<typeof parseUri>): boolean {
    if (this.config.nodes.includes(raw)) return true;
    // The canonical spelling only: the nodes are keyed by the URI as written, so
    // test:///%64efault or test:///default? would each open (and keep) another node.
    return (p.path === '/system' || p.path === '/default') && raw === `${p.driver}://${p.path}`;
  }

  /** The node's shared Connection, opened on first use; a failed open is retried next time. */
  private node(uri: string): Promise<Connection> {
    let p = this.nodes.get(uri);
    if (!p) {
      p = connect(uri, { host: this.host! });
      this.nodes.set(uri, p);
      p.then(
        () => this.log('info', 'node-open', { node: uri }),
        (e: unknown) => {
          this.nodes.delete(uri);
          this.log('warn', 'node-open-failed', { node: uri, code: codeOf(e), message: messageOf(e) });
        },
      );
    }
    return p;
  }

  /** A session that fails in an unexpected way is logged and closed: it never takes the daemon down. */
  private serveSafely(ch: Channel, unixKind?: UnixKind): void {
    this.serve(ch, unixKind).catch((e: unknown) => {
      this.log('error', 'session-failed', { transport: unixKind ? 'unix' : 'tls', message: clip(messageOf(e), 512) });
      ch.close();
    });
  }

  private async serve(ch: Channel, unixKind?: UnixKind): Promise<void> {
    const peer = ch.peer;
    const who = unixKind
      ? { cn: peer.subject.CN ?? null, transport: 'unix', socket: unixKind }
      : { cn: peer.subject.CN ?? null, fingerprint256: peer.fingerprint256 };
    if (this.stopping) return ch.close();
    // The hello names the node wanted (connectRemote adds `node`); read it, then hand
    // serveConnection a channel that yields that hello again, followed by the rest.
    const it = ch.frames[Symbol.asyncIterator]();
    const first = await it.next().catch(() => ({ done: true as const, value: undefined }));
    if (first.done) return;
    const hello = first.value as Record<string, unknown> | null;
    const refuse = async (code: string, text: string) => {
      // It may quote what the peer sent: bounded in the log and the answer.
      const message = clip(text, 512);
      this.log('warn', 'peer-refused', { ...who, code, reason: message });
      await ch.send({ t: 'refuse', code, message }).catch(() => {});
      ch.close();
    };
    const nodeUri = hello && typeof hello === 'object' ? hello.node : undefined;
    if (typeof nodeUri !== 'string') return refuse('INVALID_ARGUMENT', 'the hello must name the node wanted (node: "DRIVER:///PATH"); connect with a DRIVER+tls://HOST/PATH or DRIVER+unix:///PATH URI');
    try {
      const p = parseUri(nodeUri);
      if (p.transport || p.host) throw new VirtkitError('INVALID_ARGUMENT', `${clip(nodeUri)} is not a node of this daemon: name it as DRIVER:///PATH`);
      // Only the nodes this daemon serves: DRIVER:///system and DRIVER:///default, and those the
      // config lists. A peer must not make the daemon open a node of its choosing: a path
      // (test:///FILE reads a node document as root) or a new node per query string.
      if (!this.serves(nodeUri, p)) throw new VirtkitError('NO_SUPPORT', `${clip(nodeUri)} is not served by this daemon: it serves DRIVER:///system, DRIVER:///default and the nodes its config lists (nodes)`);
    } catch (e) {
      return refuse(codeOf(e), messageOf(e));
    }
    const rule = unixKind ? UNIX_SOCKETS[unixKind].rule : ruleFor(peer, this.config.access.identities);
    let conn: Connection;
    if (rule) {
      try {
        conn = await this.node(nodeUri);
      } catch (e) {
        // The reason is in the daemon's log (node-open-failed): it may name host files.
        return refuse(codeOf(e), `cannot open ${nodeUri} (the daemon's log says why)`);
      }
      this.log('info', 'peer-connected', { ...who, role: rule.role, ...(rule.domains ? { domains: rule.domains } : {}), node: nodeUri });
    } else {
      // Not in the policy: the session opens (so the client learns why) but every call is
      // denied by the authorize hook before it reaches the node, so the node is not opened
      // for it; serveConnection only reads `uri` for the welcome.
      conn = { uri: { uri: nodeUri } } as unknown as Connection;
      this.log('warn', 'peer-refused', { ...who, node: nodeUri, reason: 'not in the access policy: every call is denied' });
    }
    let replayed = false;
    const wrapped: RpcChannel & { peer: typeof peer } = {
      peer,
      send: (v) => ch.send(v),
      sendJson: (json) => ch.sendJson(json),
      close: () => ch.close(),
      get closeReason() {
        return ch.closeReason;
      },
      frames: {
        [Symbol.asyncIterator]: () => ({
          next: () => {
            if (!replayed) {
              replayed = true;
              return Promise.resolve({ done: false, value: hello });
            }
            return it.next();
          },
          return: (v?: unknown) => it.return?.(v) ?? Promise.resolve({ done: true as const, value: undefined }),
        }),
      },
    };
    const allowed = authorizer(peer, rule);
    // A peer's denials are logged one by one up to a bound, then counted: a client outside the
    // policy must not be able to fill the log at network speed.
    let denied = 0;
    await serveConnection(wrapped, conn, {
      ...(this.config.limits.maxCallsPerConnection !== undefined ? { maxCallsInFlight: this.config.limits.maxCallsPerConnection } : {}),
      authorize: (_peer, method, params) => {
        try {
          allowed(method, params);
        } catch (e) {
          if (++denied <= LOGGED_DENIALS) this.log('warn', 'call-denied', { ...who, method: clip(method, 64), node: nodeUri, message: clip(messageOf(e), 512) });
          throw e;
        }
      },
      onError: (e, method) => this.log('error', 'call-error', { ...who, method, node: nodeUri, message: messageOf(e) }),
      // Who attached to which console, and when it ended (an audit trail: a console can log in).
      onStream: (e) => this.log('info', e.event === 'open' ? 'stream-open' : 'stream-closed', { ...who, node: nodeUri, method: e.method, domain: typeof e.params[0] === 'string' ? e.params[0] : null, stream: e.stream, ...(e.reason ? { reason: e.reason } : {}) }),
    });
    this.log('info', 'peer-closed', { ...who, node: nodeUri, ...(ch.closeReason ? { reason: ch.closeReason.code } : {}), ...(denied > LOGGED_DENIALS ? { deniedCalls: denied } : {}) });
  }

  /**
   * Stops listening, closes every channel, then every Connection and the host. Closing a
   * Connection detaches from its domains: it stops or changes none of them.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.allSettled(this.listeners.map((l) => l.close()));
      const conns = await Promise.allSettled([...this.nodes.values()]);
      await Promise.allSettled(conns.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
      await this.host?.close().catch(() => {});
    })();
    return this.stopping;
  }
}
