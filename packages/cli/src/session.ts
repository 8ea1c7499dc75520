// One invocation of virtkit: its global options, ONE host and ONE connection shared by all
// its commands (test:///default keeps state per connection), Ctrl-C and --timeout.
import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import { connect, Host, VirtkitError, type Connection, loadHostConfig, parseUri } from '@virtkit/core';
import type { RemoteConnection } from '@virtkit/rpc';
import { toJson } from './format.js';

export interface Globals {
  connect: string;
  /** Whether -c was given or VIRTKIT_DEFAULT_URI set (hints then repeat the URI). */
  uriGiven: boolean;
  json: boolean;
  quiet: boolean;
  timeout?: number;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Writes to stderr as is (no newline added): for the progress line. */
  errRaw(text: string): void;
  /** Whether stderr is a terminal (progress is shown only there). */
  errIsTty: boolean;
  /** Reads all of standard input. */
  readStdin(): Promise<string>;
}

export const processIo: Io = {
  out: (t) => void process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => void process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  errRaw: (t) => void process.stderr.write(t),
  get errIsTty() {
    return process.stderr.isTTY === true;
  },
  async readStdin() {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
    return Buffer.concat(chunks).toString('utf8');
  },
};

/** What one command of the invocation runs with. */
export interface CommandContext {
  /** Aborted by Ctrl-C or by the global --timeout. */
  signal: AbortSignal;
  /** Whether the --timeout (not Ctrl-C) aborted `signal`. */
  timedOut(): boolean;
}

export class Session {
  private hostP?: Promise<Host>;
  private connP?: Promise<Connection>;
  private conn?: Connection;
  private readonly interrupt = new AbortController();

  constructor(
    readonly globals: Globals,
    readonly io: Io,
    private readonly pluginSearch: string[],
  ) {}

  get interrupted(): boolean {
    return this.interrupt.signal.aborted;
  }

  /** Ctrl-C: cancels the running job and stops the invocation. */
  cancel(): void {
    this.interrupt.abort(new VirtkitError('CANCELLED', 'interrupted'));
  }

  host(): Promise<Host> {
    // The host config file ($VIRTKIT_CONFIG, /etc/virtkit/virtkit.json as root, else
    // ~/.config/virtkit/virtkit.json) sets state dirs, extra plugins and the grant policy.
    this.hostP ??= loadHostConfig().then((config) =>
      new Host({ ...config, pluginSearch: this.pluginSearch, onLog: (plugin, level, message) => this.pluginLog(plugin, level, message) }).init(),
    );
    return this.hostP;
  }

  /** Plugins' warnings and errors go to stderr (not with -q); all their logs with $VIRTKIT_DEBUG. */
  private pluginLog(plugin: string, level: string, message: string): void {
    const loud = level === 'warn' || level === 'error';
    if (process.env.VIRTKIT_DEBUG || (loud && !this.globals.quiet)) this.io.err(`${plugin}: ${level}: ${message}`);
  }

  /**
   * The invocation's connection, opened by the first command that needs it. `watch: false`
   * (a console) leaves the domains' monitor channels to other managers: QMP serves one
   * client, and a long-lived console must not lock out the next short command.
   */
  connection(opts: { watch?: boolean } = {}): Promise<Connection> {
    const parsed = parseUri(this.globals.connect);
    if (parsed.transport === 'tls' || parsed.transport === 'unix') {
      this.connP ??= openRemoteNode(this.globals.connect);
      return this.connP;
    }
    const embedded = () =>
      this.host().then(async (host) => {
        this.conn = await connect(this.globals.connect, { host, watch: opts.watch });
        return this.conn;
      });
    this.connP ??= this.viaDaemon(parsed).then((c) => c ?? embedded());
    return this.connP;
  }

  /**
   * A local node while virtkitd runs here goes through it, as virsh goes through libvirtd:
   * the daemon is the long-lived owner that watches the domains (QMP serves one client), and
   * a short command in this process would contend with it. Its admin socket (or, for a user
   * who cannot write that, the read-only one; `VIRTKIT_DAEMON_SOCKET` names another); when no
   * daemon answers there, or it does not serve this node, the command runs embedded.
   * `VIRTKIT_EMBEDDED=1` always runs embedded; test:///default always does (a fresh in-memory
   * node per connection, like libvirt's).
   */
  private async viaDaemon(parsed: ReturnType<typeof parseUri>): Promise<Connection | undefined> {
    if (parsed.host || parsed.driver === 'test' || process.env.VIRTKIT_EMBEDDED === '1') return undefined;
    const { defaultUnixSocket } = await import('@virtkit/rpc');
    const socket = process.env.VIRTKIT_DAEMON_SOCKET || defaultUnixSocket();
    if (!existsSync(socket)) return undefined;
    const uri = `${parsed.driver}+unix://${parsed.path}?${new URLSearchParams({ ...parsed.params, socket })}`;
    try {
      const c = await openRemoteNode(uri);
      if (process.env.VIRTKIT_DEBUG) this.io.err(`virtkit: ${this.globals.connect} through virtkitd at ${socket}`);
      return c;
    } catch (e) {
      // No daemon listening (a stale socket), or one that does not serve this node: embedded.
      if (VirtkitError.is(e, 'IO_ERROR') || VirtkitError.is(e, 'NO_SUPPORT') || VirtkitError.is(e, 'NO_DRIVER')) return undefined;
      throw e;
    }
  }

  /** The open connection, if a command opened one (for hints). */
  get openConnection(): Connection | undefined {
    return this.conn;
  }

  /** The context for the next command: Ctrl-C and a fresh --timeout. */
  commandContext(): CommandContext {
    const ms = this.globals.timeout;
    const deadline = ms !== undefined ? AbortSignal.timeout(ms) : undefined;
    const signal = deadline ? AbortSignal.any([this.interrupt.signal, deadline]) : this.interrupt.signal;
    return { signal, timedOut: () => !!deadline?.aborted && !this.interrupted };
  }

  /** One line per JSON document, so several commands give JSON lines. */
  printJson(value: unknown): void {
    this.io.out(toJson(value));
  }

  /** Informational messages ("Domain web1 started"); -q silences them. */
  info(text: string): void {
    if (!this.globals.quiet) this.io.out(text);
  }

  /** A one-line progress display on a terminal's stderr; returns what clears it. */
  progress(label: string): { onProgress?: (percent: number, message: string) => void; done(): void } {
    if (this.globals.quiet || !this.io.errIsTty) return { done() {} };
    let shown = false;
    return {
      onProgress: (percent, message) => {
        shown = true;
        this.io.errRaw(`\r\x1b[K${label}: ${Math.round(percent)}%${message ? ` ${message.replace(/[\r\n]+/g, ' ')}` : ''}`);
      },
      done: () => {
        if (shown) this.io.errRaw('\r\x1b[K');
      },
    };
  }

  async close(): Promise<void> {
    const conn = await this.connP?.catch(() => undefined);
    await conn?.close().catch(() => {});
    const host = await this.hostP?.catch(() => undefined);
    await host?.close().catch(() => {});
  }
}

/**
 * The certificates for DRIVER+tls:// URIs: $VIRTKIT_TLS_CA, $VIRTKIT_TLS_CERT and
 * $VIRTKIT_TLS_KEY, each defaulting to the `virtkit pki` directory (/etc/virtkit/pki as root,
 * else ~/.config/virtkit/pki): ca-cert.pem, clients/<user>-cert.pem and clients/<user>-key.pem,
 * <user> being the login name.
 */
export function tlsFiles(env: NodeJS.ProcessEnv = process.env): { ca: string; cert: string; key: string } {
  const dir = process.getuid?.() === 0 ? '/etc/virtkit/pki' : join(homedir(), '.config', 'virtkit', 'pki');
  const user = userInfo().username;
  return {
    ca: env.VIRTKIT_TLS_CA || join(dir, 'ca-cert.pem'),
    cert: env.VIRTKIT_TLS_CERT || join(dir, 'clients', `${user}-cert.pem`),
    key: env.VIRTKIT_TLS_KEY || join(dir, 'clients', `${user}-key.pem`),
  };
}

/**
 * A node through virtkitd (DRIVER+tls:// with the tlsFiles() certificates, or DRIVER+unix://
 * with none), shaped as the Connection the verbs use. `capabilities` answers a promise here
 * (the verbs await it); `console` is the daemon's stream (feature 'streams'); `listJobs` and
 * `cancelJob` are the daemon's (promises). What the daemon does not offer (the synchronous
 * `supports`) answers false. Ctrl-C and
 * --timeout cancel a lifecycle call or an exec on the daemon (feature 'cancel'), and progress
 * comes back from it (feature 'progress'), as with a local node.
 */
async function openRemoteNode(uri: string): Promise<Connection> {
  const { connectRemote } = await import('@virtkit/rpc');
  const parsed = parseUri(uri);
  const remote: RemoteConnection = await connectRemote(uri, parsed.transport === 'unix' ? {} : tlsFiles());
  type Job = { signal?: AbortSignal; onProgress?(percent: number, message: string): void };
  const adapter = {
    uri: parsed,
    listDomains: (o?: { all?: boolean }) => remote.listDomains(o),
    define: (doc: unknown) => remote.define(doc),
    undefine: (name: string) => remote.undefine(name),
    setAutostart: (name: string, on: boolean) => remote.setAutostart(name, on),
    start: (name: string, o?: Job) => remote.start(name, o),
    shutdown: (name: string, o?: Job & { timeoutMs?: number }) => remote.shutdown(name, o),
    destroy: (name: string, o?: Job) => remote.destroy(name, o),
    reboot: (name: string, o?: Job) => remote.reboot(name, o),
    reset: (name: string, o?: Job) => remote.reset(name, o),
    suspend: (name: string, o?: Job) => remote.suspend(name, o),
    resume: (name: string, o?: Job) => remote.resume(name, o),
    info: (name: string) => remote.info(name),
    exec: (name: string, argv: string[], o?: Job & { env?: Record<string, string>; cwd?: string; stdin?: string | Uint8Array; timeoutMs?: number }) => remote.exec(name, argv, o),
    getConfig: (name: string, o?: { live?: boolean }) => remote.getConfig(name, o),
    nodeInfo: () => remote.nodeInfo(),
    events(o: { since?: number; follow?: boolean; signal?: AbortSignal } = {}) {
      if (o.follow === false) {
        // A replay that stops: one call, then iterate what it returned.
        const all = remote.eventsSince(o.since ?? 0);
        return (async function* () {
          yield* await all;
        })();
      }
      return remote.events({ since: o.since, signal: o.signal });
    },
    capabilities: () => remote.capabilities(),
    supports: () => false,
    console: (name: string) => remote.console(name),
    listJobs: () => remote.listJobs(),
    cancelJob: (id: number) => remote.cancelJob(id),
    close: async () => remote.close(),
  };
  return adapter as unknown as Connection;
}
