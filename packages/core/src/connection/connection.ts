// A connection to one node through one driver. The host owns durable state (configs,
// runtime records, events); the driver decides what each operation does in the world.
// Local, embedded and (later) remote connections offer this same API.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { GrantChecker } from '../plugins/grants.js';
import { InfoReuse } from './info-reuse.js';
import { VirtkitError } from '../errors.js';
import { ConfigValidator, type DomainConfig } from '../config/validate.js';
import { EventHub, type EventListener } from '../events/hub.js';
import { JobQueue, type JobInfo, type JobOptions } from '../jobs/jobs.js';
import { defaultHost, Host, type HostOptions, type LoadedPlugin } from '../host.js';
import { FileStore } from '../store/file-store.js';
import { MemoryStore } from '../store/memory-store.js';
import type { StateStore } from '../store/store.js';
import type { DomainEvent, DomainInfo, DomainState, DomainStatus, DriverDescription, EventTrigger, NodeInfo, OperationKind, OperationRequest, Outcome, StoredDomain } from '../types.js';
import { parseUri, type ParsedUri } from './uri.js';
import type { Capabilities, DomainConnection, DomainSummary } from './api.js';

export type { Capabilities, DomainConnection, DomainSummary } from './api.js';
import { execArgs, execResult, type ExecOptions, type ExecResult } from './exec.js';

export interface ConnectOptions {
  /** The host to load plugins in (default: one per process). */
  host?: Host;
  /** Options for the default host, when `host` is not given. */
  hostOptions?: HostOptions;
  /** Keep this node's state here (a file store); default: the driver decides. */
  stateDir?: string;
  /**
   * false: do not take the active domains' channels at connect (re-attach checks only that
   * they still live; channels open on the first operation that needs one). For a
   * long-lived process that must not hold a single-client monitor (QMP), e.g. a console.
   */
  watch?: boolean;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** A node's own name among a plugin's nodes: qemu:///system -> "system". */
const nodeSlug = (u: ParsedUri) => u.path.replace(/^\/+/, '').replace(/\//g, '_') || 'default';

/** Whether a process still runs (EPERM: it does, as someone else). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
const INACTIVE: DomainState[] = ['shut-off', 'no-state'];
const isActive = (d: StoredDomain) => !INACTIVE.includes(d.status.state) && !(d.status.state === 'crashed' && d.runtime === undefined);

/** Which states each lifecycle operation may start from, and what to say otherwise. */
const PRECONDITIONS: Partial<Record<OperationKind, { ok: (d: StoredDomain) => boolean; why: string }>> = {
  start: { ok: (d) => !isActive(d), why: 'is already active' },
  shutdown: { ok: (d) => d.status.state === 'running' || d.status.state === 'blocked', why: 'is not running' },
  reboot: { ok: (d) => d.status.state === 'running' || d.status.state === 'blocked', why: 'is not running' },
  reset: { ok: isActive, why: 'is not active' },
  destroy: { ok: isActive, why: 'is not active' },
  suspend: { ok: (d) => d.status.state === 'running' || d.status.state === 'blocked', why: 'is not running' },
  resume: { ok: (d) => d.status.state === 'paused', why: 'is not paused' },
};

export class Connection implements DomainConnection {
  /** Shared by every connection of this host to the same persistent node. */
  private jobs!: JobQueue;
  private validator = new ConfigValidator();
  private node?: NodeInfo;
  private closed = false;
  private unwatch?: () => void;
  /** The node's own runtime dir under the plugin's: nodes never see each other's files. */
  private get runtimeDir(): string {
    return join(this.plugin.runtimeDir, nodeSlug(this.uri));
  }
  private watchDomains = true;
  /** Domains with a handle-event for channel input already queued: one drains them all. */
  private inputQueued = new Set<string>();
  /** The driver's last info per domain, where it said the host may answer from it. */
  private infoReuse!: InfoReuse;

  private constructor(
    readonly uri: ParsedUri,
    private plugin: LoadedPlugin,
    private store: StateStore,
    private hub: EventHub,
    private host: Host,
    private ownsHost: boolean,
  ) {}

  static async open(uri: string, opts: ConnectOptions = {}): Promise<Connection> {
    const parsed = parseUri(uri);
    if (parsed.transport || parsed.host) {
      throw new VirtkitError('NO_SUPPORT', `${uri}: a remote node is reached through virtkitd: use connect() from @virtkit/rpc, which takes every URI (this one opens nodes in this process: ${parsed.driver}://${parsed.path})`);
    }
    const ownsHost = !opts.host && !!opts.hostOptions;
    const host = opts.host ?? (opts.hostOptions ? await new Host(opts.hostOptions).init() : await defaultHost());
    try {
      const plugin = await host.plugins.forScheme(parsed.driver);
      const perConnection = plugin.description.features.includes('per-connection-state');
      const storeDir = opts.stateDir ?? (perConnection ? undefined : join(plugin.nodesDir, nodeSlug(parsed)));
      const store: StateStore = storeDir ? await FileStore.open(storeDir) : new MemoryStore();
      const conn = new Connection(parsed, plugin, store, new EventHub(store), host, ownsHost);
      // Two connections to one node in this process must not run two operations on one
      // domain at once: they share the node's job queue.
      conn.jobs = storeDir ? host.plugins.jobQueue(resolve(storeDir)) : new JobQueue();
      conn.watchDomains = opts.watch !== false;
      conn.infoReuse = new InfoReuse(plugin.grants.executables, (domain, why) =>
        host.options.onLog?.(plugin.pkg.name, 'warn', `info of ${domain} is asked of the driver every time: ${why}`),
      );
      const unwatch = host.plugins.watch(plugin.pkg.name, parsed.uri, (n) => conn.onWatch(n.domain, n.trigger));
      // A replaced worker lost the channels it watched: re-attach the active domains.
      const unlost = host.plugins.onWorkerLost(plugin.pkg.name, () => {
        if (!conn.closed && conn.watchDomains) void conn.reattachAll().catch(() => {});
      });
      conn.unwatch = () => {
        unwatch();
        unlost();
      };
      try {
        await conn.openNode();
      } catch (e) {
        await conn.close();
        throw e;
      }
      return conn;
    } catch (e) {
      if (ownsHost) await host.close();
      throw e;
    }
  }

  private async openNode(): Promise<void> {
    await mkdir(this.runtimeDir, { recursive: true, mode: 0o700 });
    if (!this.supports('open')) return this.reattachAll();
    let nodeDocument: string | undefined;
    const p = this.uri.path;
    if (p !== '/default' && p !== '/system' && p !== '/session' && p !== '/') {
      if (!this.plugin.description.features.includes('node-document') || !isAbsolute(p)) {
        throw new VirtkitError('INVALID_ARGUMENT', `${this.uri.uri}: unknown path ${p} for the ${this.plugin.description.name} driver`);
      }
      try {
        nodeDocument = await readFile(p, 'utf8');
      } catch (e) {
        throw new VirtkitError('NOT_FOUND', `${this.uri.uri}: cannot read node document ${p}: ${(e as Error).message}`);
      }
    }
    // The driver learns what the host records, so it can clean up after an operation a
    // crash interrupted (e.g. a hypervisor process started for a domain recorded as off).
    const before = await this.store.listDomains();
    // busy: another manager (or connection) is in the middle of an operation on it.
    // busy: a live manager is starting it; interrupted: its start's manager died before recording the outcome.
    const recorded = before.map((d) => {
      const starter = d.pending ? processAlive(d.pending.pid) : undefined;
      return { name: d.name, uuid: d.config.uuid, active: isActive(d), busy: starter === true, interrupted: starter === false };
    });
    const out = await this.run({ kind: 'open', args: { domains: recorded }, nodeDocument });
    if (out.node) this.node = out.node;
    const known = new Set(before.map((d) => d.name));
    for (const [i, rec] of out.domains.entries()) {
      const config = this.validateConfig(JSON.parse(rec.config), `node document /domains/${i}/config`);
      // What the host already records wins: a persistent node's state survives reopening.
      if (known.has(config.name)) continue;
      await this.store.putConfig(config.name, { ...config, uuid: config.uuid ?? randomUUID() } as unknown as Record<string, unknown>);
      await this.store.putRuntime(config.name, rec.status, rec.runtime);
    }
    // An operation whose manager died is over: what the record says is the state.
    for (const d of before) if (d.pending && !processAlive(d.pending.pid)) await this.store.putPending(d.name, undefined);
    // Domains the driver reported were just recorded fresh: nothing of theirs to re-attach.
    await this.reattachAll(before);
  }

  /**
   * Domains the records say are active, from before this host started: the driver
   * re-opens their channels or reports them gone. Runs before connect() returns, so the
   * first listing is already true.
   */
  private async reattachAll(recorded?: StoredDomain[]): Promise<void> {
    if (!this.supports('reattach')) return;
    const active = (recorded ?? (await this.store.listDomains())).filter((d) => isActive(d) && d.runtime !== undefined);
    const args = { watch: this.watchDomains };
    const results = await Promise.allSettled(active.map((d) => this.jobs.run(d.name, 'reattach', {}, async () => this.apply(d, await this.run({ kind: 'reattach', domain: d, args })))));
    // One domain that cannot be re-attached keeps its recorded state; the node still opens.
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.host.options.onLog?.(this.plugin.pkg.name, 'warn', `re-attaching ${active[i]!.name} failed: ${(r.reason as Error).message}`);
    });
  }

  /** Unsolicited input for a domain: a handle-event job, after the domain's jobs in flight. */
  private onWatch(domain: string, trigger: EventTrigger) {
    if (this.closed || !this.supports('handle-event')) return;
    if (trigger.tag === 'channel-message') {
      if (this.inputQueued.has(domain)) return;
      this.inputQueued.add(domain);
    }
    void this.jobs
      .run(domain, 'handle-event', {}, async () => {
        if (trigger.tag === 'channel-message') this.inputQueued.delete(domain);
        const d = await this.store.getDomain(domain);
        if (!d || this.closed) return;
        await this.apply(d, await this.run({ kind: 'handle-event', domain: d, trigger }));
      })
      .catch((e) => {
        // Input that arrives while the connection closes (a CLI that just destroyed the
        // domain and exits) is the next manager's to handle: nothing failed.
        if (!this.closed) this.host.options.onLog?.(this.plugin.pkg.name, 'warn', `handle-event for ${domain} failed: ${(e as Error).message}`);
      });
  }

  private validateConfig(doc: unknown, where?: string): DomainConfig {
    const schemas: Record<string, object> = {};
    if (this.plugin.description.configSchema) schemas[this.plugin.description.name] = JSON.parse(this.plugin.description.configSchema);
    try {
      return this.validator.validate(doc, schemas);
    } catch (e) {
      if (where && VirtkitError.is(e)) throw new VirtkitError(e.code, `${where}: ${e.message}`, { fields: e.fields });
      throw e;
    }
  }

  /** Runs one driver operation; NO_SUPPORT when the driver did not declare it. */
  private async run(
    req: { kind: OperationKind; domain?: StoredDomain; args?: Record<string, unknown>; nodeDocument?: string; trigger?: EventTrigger },
    opts: { signal?: AbortSignal; onProgress?: (p: number, m: string) => void } = {},
  ): Promise<Outcome> {
    this.assertOpen();
    if (!this.supports(req.kind)) {
      throw new VirtkitError('NO_SUPPORT', `the ${this.plugin.description.name} driver does not support ${req.kind}`);
    }
    const d = req.domain;
    const request: OperationRequest = {
      kind: req.kind,
      trigger: req.trigger,
      node: { uri: this.uri.uri, stateDir: this.plugin.stateDir, runtimeDir: this.runtimeDir, nodeDocument: req.nodeDocument },
      domain: d?.name,
      config: d ? JSON.stringify(d.liveConfig ?? d.config) : undefined,
      runtime: d?.runtime,
      status: d?.status,
      args: JSON.stringify(req.args ?? {}),
    };
    return this.plugin.host.run(request, opts);
  }

  private assertOpen() {
    if (this.closed) throw new VirtkitError('OPERATION_INVALID', 'the connection is closed');
  }

  /** Whether the driver implements an operation or names a feature. */
  supports(what: OperationKind | string): boolean {
    const d = this.plugin.description;
    return (d.operations as string[]).includes(what) || d.features.includes(what);
  }

  get driver(): DriverDescription {
    return this.plugin.description;
  }

  private checkName(name: string): void {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new VirtkitError('INVALID_ARGUMENT', `domain name ${JSON.stringify(name)} is invalid: use letters, digits, '_', '.', '-' (up to 64, not starting with a symbol)`);
    }
  }

  /** The stored domain; `peek`: possibly the store's own object, only to be read. */
  private async domain(name: string, peek = false): Promise<StoredDomain> {
    this.checkName(name);
    const d = await (peek ? this.store.peekDomain(name) : this.store.getDomain(name));
    if (!d) throw new VirtkitError('NO_DOMAIN', `no domain named ${name} on ${this.uri.uri}`);
    return d;
  }

  async listDomains(opts: { all?: boolean } = {}): Promise<DomainSummary[]> {
    this.assertOpen();
    const all = await this.store.listDomains();
    return all
      .filter((d) => opts.all || isActive(d))
      .map((d) => ({ name: d.name, uuid: d.config.uuid as string | undefined, state: d.status.state, reason: d.status.reason, persistent: true, autostart: !!d.autostart }));
  }

  /** Defines a domain, or updates the persistent config of an existing one (used at its next start). */
  async define(doc: unknown): Promise<DomainSummary> {
    this.assertOpen();
    const config = this.validateConfig(doc);
    return this.jobs.run(config.name, 'define', {}, async () => {
      const existing = await this.store.getDomain(config.name);
      if (existing?.config.uuid && config.uuid && existing.config.uuid !== config.uuid) {
        throw new VirtkitError('OPERATION_INVALID', `domain ${config.name} already exists with uuid ${existing.config.uuid}, not ${config.uuid}`);
      }
      const uuid = config.uuid ?? (existing?.config.uuid as string | undefined) ?? randomUUID();
      const owner = await this.store.findByUuid(uuid);
      const clash = owner && owner.name !== config.name ? owner : undefined;
      if (clash) throw new VirtkitError('OPERATION_INVALID', `uuid ${uuid} is already used by domain ${clash.name}`);
      const full = { ...config, uuid } as unknown as Record<string, unknown>;
      if (this.supports('define')) await this.run({ kind: 'define', domain: { name: config.name, config: full, status: existing?.status ?? { state: 'shut-off', reason: 'unknown' }, runtime: existing?.runtime } });
      await this.store.putConfig(config.name, full);
      await this.hub.emit([{ domain: config.name, kind: 'defined', reason: 'unknown', detail: existing ? 'updated' : 'added' }]);
      const d = (await this.store.getDomain(config.name))!;
      return { name: d.name, uuid, state: d.status.state, reason: d.status.reason, persistent: true, autostart: !!d.autostart };
    });
  }

  async undefine(name: string): Promise<void> {
    const d0 = await this.domain(name);
    return this.jobs.run(d0.name, 'undefine', {}, async () => {
      const d = await this.domain(name);
      if (isActive(d)) throw new VirtkitError('OPERATION_INVALID', `domain ${name} is active: destroy or shut it down before undefining it`);
      if (this.supports('undefine')) await this.run({ kind: 'undefine', domain: d });
      await this.store.removeDomain(name);
      this.infoReuse.forget(name);
      await this.hub.emit([{ domain: name, kind: 'undefined', reason: 'unknown' }]);
    });
  }

  /** Marks a domain to be started when the node's long-lived manager (virtkitd) starts. */
  async setAutostart(name: string, on: boolean): Promise<void> {
    const d = await this.domain(name);
    await this.jobs.run(d.name, 'autostart', {}, () => this.store.putAutostart(name, on));
  }

  /** Runs a lifecycle operation as a job: serialized per domain, with progress and cancel. */
  private async lifecycle(kind: OperationKind, name: string, opts: JobOptions & { args?: Record<string, unknown> } = {}): Promise<DomainStatus> {
    // The record is read once, inside the job (NO_DOMAIN from there): a read before queueing
    // cost every call ~0.3 ms and proved nothing a queued job could rely on.
    this.checkName(name);
    return this.jobs.run(name, kind, opts, async (job) => {
      const d = await this.domain(name);
      if (!this.supports(kind)) throw new VirtkitError('NO_SUPPORT', `the ${this.driver.name} driver does not support ${kind}`);
      const pre = PRECONDITIONS[kind];
      if (pre && !pre.ok(d)) throw new VirtkitError('OPERATION_INVALID', `cannot ${kind} domain ${name}: it ${pre.why} (state ${d.status.state})`);
      // A start runs the persistent config; later operations keep seeing that live config.
      const live = kind === 'start' ? { ...d, liveConfig: undefined } : d;
      // A start may leave a hypervisor process behind if this manager dies before it is
      // recorded: mark it, so another manager opening the node meanwhile leaves it alone.
      if (kind === 'start') await this.store.putPending(name, { op: kind, pid: process.pid, since: Date.now() });
      let out: Outcome;
      try {
        out = await this.run({ kind, domain: live, args: opts.args }, { signal: job.signal, onProgress: job.progress });
      } catch (e) {
        if (kind === 'start') await this.store.putPending(name, undefined);
        if (VirtkitError.is(e, 'CANCELLED')) throw new VirtkitError('CANCELLED', `${kind} ${name} cancelled (${e.message})`, { cause: e });
        throw e;
      }
      return this.apply(d, out, kind === 'start' ? d.config : undefined);
    });
  }

  private async apply(d: StoredDomain, out: Outcome, startedWith?: Record<string, unknown>): Promise<DomainStatus> {
    const status = out.status ?? d.status;
    const runtime = out.clearRuntime ? undefined : (out.runtime ?? d.runtime);
    const liveConfig = runtime === undefined ? undefined : (startedWith ?? d.liveConfig);
    // The record and its events under one lock: one round trip, and no other writer between.
    await this.store.withLock(async () => {
      // Two files, two fsyncs: in parallel.
      await Promise.all([this.store.putRuntime(d.name, status, runtime, liveConfig), this.hub.emit(out.events)]);
    });
    return status;
  }

  start(name: string, opts?: JobOptions) {
    return this.lifecycle('start', name, opts);
  }
  /** Asks the guest to shut down (ACPI power button); `timeoutMs` bounds the wait. */
  shutdown(name: string, opts: JobOptions & { timeoutMs?: number } = {}) {
    return this.lifecycle('shutdown', name, { ...opts, args: { timeoutMs: opts.timeoutMs ?? 60_000 } });
  }
  destroy(name: string, opts?: JobOptions) {
    return this.lifecycle('destroy', name, opts);
  }
  reboot(name: string, opts?: JobOptions) {
    return this.lifecycle('reboot', name, opts);
  }
  reset(name: string, opts?: JobOptions) {
    return this.lifecycle('reset', name, opts);
  }
  suspend(name: string, opts?: JobOptions) {
    return this.lifecycle('suspend', name, opts);
  }
  resume(name: string, opts?: JobOptions) {
    return this.lifecycle('resume', name, opts);
  }

  async info(name: string): Promise<DomainInfo & { details?: Record<string, unknown> }> {
    this.assertOpen();
    // Only read (the request, the reuse key, the answer): no copy of the record.
    const d = await this.domain(name, true);
    const c = (d.liveConfig ?? d.config) as unknown as DomainConfig;
    if (!this.supports('info')) {
      const kib = BigInt(c.memoryMiB) * 1024n;
      return { state: d.status.state, reason: d.status.reason, maxMemoryKib: BigInt(c.maxMemoryMiB ?? c.memoryMiB) * 1024n, memoryKib: isActive(d) ? kib : 0n, vcpus: c.vcpus, cpuTimeNs: 0n };
    }
    // The request as run() makes it: what a reusable answer must have been given. The config's
    // JSON only when it has to be compared (the same stored object is the same request).
    let json: string | undefined;
    const key = { get config() { return (json ??= JSON.stringify(c)); }, status: d.status, runtime: d.runtime, record: d };
    let answer = this.infoReuse.answer(name, key);
    if (!answer) {
      const out = await this.run({ kind: 'info', domain: d });
      if (!out.info) throw new VirtkitError('DRIVER_FAILED', `the ${this.driver.name} driver answered info without info`);
      this.infoReuse.remember(name, key, out);
      answer = { info: out.info, payload: out.payload };
    }
    // Driver-specific facts (e.g. the accelerator QEMU runs with) ride along as `details`.
    const details = answer.payload ? (JSON.parse(answer.payload) as Record<string, unknown>) : undefined;
    return details && typeof details === 'object' ? { ...answer.info, details } : answer.info;
  }

  /**
   * The domain's console as a byte stream (a serial console for VMs). The driver names the
   * endpoint, which must lie under the plugin's socket grants; the bytes never pass
   * through the driver.
   */
  async console(name: string): Promise<Duplex> {
    this.assertOpen();
    const d = await this.domain(name);
    if (!this.supports('console')) throw new VirtkitError('NO_SUPPORT', `the ${this.driver.name} driver has no console`);
    if (!isActive(d)) throw new VirtkitError('OPERATION_INVALID', `domain ${name} is not running: it has no console`);
    const out = await this.run({ kind: 'console', domain: d });
    const path = (JSON.parse(out.payload ?? '{}') as { socket?: string }).socket;
    if (typeof path !== 'string') throw new VirtkitError('DRIVER_FAILED', `the ${this.driver.name} driver named no console endpoint`);
    const checked = new GrantChecker(this.plugin.pkg.name, this.plugin.grants).socket(path);
    return new Promise<Socket>((resolve, reject) => {
      const s = createConnection(checked);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new VirtkitError('TIMEOUT', `console of ${name}: ${path} did not accept within 5 s`));
      }, 5000);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(new VirtkitError('IO_ERROR', `console of ${name}: ${e.message}`, { cause: e }));
      });
    });
  }

  /**
   * Runs a command inside a running domain (containers: lxc-attach) and waits for it; its
   * exit code or signal and its bounded output come back. Not queued behind the domain's
   * lifecycle jobs (as `incus exec`): a long command does not hold up a shutdown.
   */
  async exec(name: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.assertOpen();
    const args = execArgs(argv, opts);
    const d = await this.domain(name);
    if (!this.supports('exec')) throw new VirtkitError('NO_SUPPORT', `the ${this.driver.name} driver does not support exec`);
    if (d.status.state !== 'running' && d.status.state !== 'blocked') throw new VirtkitError('OPERATION_INVALID', `cannot exec in domain ${name}: it is not running (state ${d.status.state})`);
    const out = await this.run({ kind: 'exec', domain: d, args }, { signal: opts.signal });
    return execResult(this.driver.name, out.payload);
  }

  /** The persistent config, or with `live` the one the running domain was started with. */
  async getConfig(name: string, opts: { live?: boolean } = {}): Promise<DomainConfig> {
    const d = await this.domain(name);
    return structuredClone((opts.live && d.liveConfig ? d.liveConfig : d.config) as unknown as DomainConfig);
  }

  async nodeInfo(): Promise<NodeInfo> {
    this.assertOpen();
    if (this.node) return structuredClone(this.node);
    const out = await this.run({ kind: 'node-info' });
    if (!out.node) throw new VirtkitError('DRIVER_FAILED', `the ${this.driver.name} driver answered node-info without node info`);
    this.node = out.node;
    return structuredClone(out.node);
  }

  capabilities(): Capabilities {
    const p = this.plugin.pkg;
    return { uri: this.uri.uri, hostWorld: this.host.worldVersion, driver: this.driver, plugin: { name: p.name, version: p.version, world: p.manifest.world } };
  }

  /** Calls `listener` for each lifecycle event; returns the function that stops it. */
  onEvent(listener: EventListener): () => void {
    return this.hub.on(listener);
  }

  /**
   * Lifecycle events as an async iterator; `since` replays what the node kept after that
   * seq; `follow: false` ends after the replay instead of waiting for new events.
   */
  events(opts: { since?: number; follow?: boolean; signal?: AbortSignal; maxQueued?: number } = {}): AsyncIterableIterator<DomainEvent> {
    return this.hub.iterate(opts);
  }

  /** Jobs in flight on this connection. */
  listJobs(): JobInfo[] {
    return this.jobs.list();
  }

  cancelJob(id: number): boolean {
    const j = this.jobs.get(id);
    j?.cancel();
    return !!j;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    this.infoReuse.clear();
    await this.store.close();
    if (this.ownsHost) await this.host.close();
  }
}

export function connect(uri: string, opts?: ConnectOptions): Promise<Connection> {
  return Connection.open(uri, opts);
}
