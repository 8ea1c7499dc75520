// The embedded host: finds plugins, decides their grants, generates their glue and runs
// each in its own worker, wired with tsyringe. Explicit symbol tokens and factory
// registrations only: esbuild and TS 5 decorators emit no metadata for auto-wiring.
import 'reflect-metadata';
import { container as rootContainer, instanceCachingFactory, type DependencyContainer } from 'tsyringe';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VirtkitError } from './errors.js';
import { checkWorld, discoverPlugins, HOST_WORLD_ID, type PluginPackage } from './plugins/manifest.js';
import { decideGrants, loadPolicy, type GrantPolicy } from './plugins/policy.js';
import type { Grants } from './plugins/grants.js';
import { loadGlue } from './wasm/glue.js';
import { JobQueue } from './jobs/jobs.js';
import { PluginHost } from './wasm/plugin-host.js';
import type { EffectLimits, WatchNotice } from './wasm/effects.js';
import type { DriverDescription } from './types.js';

export const TOKENS = {
  HostOptions: Symbol('virtkit.HostOptions'),
  Policy: Symbol('virtkit.GrantPolicy'),
  Catalog: Symbol('virtkit.PluginCatalog'),
  Plugins: Symbol('virtkit.PluginManager'),
  // Registered in each plugin's own child container:
  Plugin: Symbol('virtkit.PluginPackage'),
  PluginGrants: Symbol('virtkit.PluginGrants'),
  PluginHost: Symbol('virtkit.PluginHost'),
} as const;

export interface HostOptions {
  /** Durable state root (default /var/lib/virtkit as root, else ~/.local/share/virtkit). */
  stateRoot?: string;
  /** Volatile runtime root (default /run/virtkit as root, else $XDG_RUNTIME_DIR/virtkit or /tmp). */
  runtimeRoot?: string;
  /** Where generated glue is cached (default ~/.cache/virtkit/glue). */
  cacheDir?: string;
  /** Directories whose node_modules (and their parents') are searched for plugins. */
  pluginSearch?: string[];
  /** Plugin package directories to load in addition to installed ones. */
  pluginPaths?: string[];
  /** Grant policy: a file path, or the policy itself. */
  policy?: string | GrantPolicy;
  /** A driver stuck in one step longer than this is stopped and reloaded (default 5000). */
  stepTimeoutMs?: number;
  /** Bounds on effects (longest effect, largest message, largest read). */
  limits?: Partial<EffectLimits>;
  onLog?(plugin: string, level: string, message: string): void;
}

export interface LoadedPlugin {
  pkg: PluginPackage;
  description: DriverDescription;
  grants: Grants;
  stateDir: string;
  runtimeDir: string;
  /** Where the host keeps this plugin's nodes' records: outside every grant of the plugin. */
  nodesDir: string;
  host: PluginHost;
  container: DependencyContainer;
}

export interface PluginSummary {
  name: string;
  version: string;
  schemes: string[];
  world: string;
  grants: PluginPackage['manifest']['grants'];
  dir: string;
}

const isRoot = () => process.getuid?.() === 0;

export function defaultRoots(): { stateRoot: string; runtimeRoot: string; cacheDir: string } {
  const home = homedir();
  const xdg = (k: string, d: string) => process.env[k] || d;
  if (isRoot()) return { stateRoot: '/var/lib/virtkit', runtimeRoot: '/run/virtkit', cacheDir: join(xdg('XDG_CACHE_HOME', join(home, '.cache')), 'virtkit', 'glue') };
  return {
    stateRoot: join(xdg('XDG_DATA_HOME', join(home, '.local', 'share')), 'virtkit'),
    // Short: unix socket paths under it must stay below 108 bytes.
    runtimeRoot: process.env.XDG_RUNTIME_DIR ? join(process.env.XDG_RUNTIME_DIR, 'virtkit') : `/tmp/virtkit-${process.getuid?.() ?? 'user'}`,
    cacheDir: join(xdg('XDG_CACHE_HOME', join(home, '.cache')), 'virtkit', 'glue'),
  };
}

/**
 * Plugins are found where the application and core are installed, never from the current
 * directory: running a command from a directory someone else controls must not load
 * their "plugin".
 */
function defaultSearch(): string[] {
  const dirs: string[] = [];
  if (process.argv[1]) dirs.push(dirname(process.argv[1]));
  dirs.push(dirname(fileURLToPath(import.meta.url)));
  return dirs;
}

const slug = (name: string) => name.replace(/^@/, '').replace(/[^A-Za-z0-9_.-]+/g, '-');

export class PluginManager {
  private catalogCache?: Promise<PluginPackage[]>;
  private loaded = new Map<string, Promise<LoadedPlugin>>();
  /** plugin name -> node URI -> who handles that node's unsolicited input (the first opener). */
  private watchers = new Map<string, Map<string, Array<(n: WatchNotice) => void>>>();

  private queues = new Map<string, JobQueue>();
  private lostListeners = new Map<string, Set<() => void>>();

  /** Called when the plugin's worker was lost: whatever it held (channels, watches) is gone. */
  onWorkerLost(plugin: string, fn: () => void): () => void {
    const set = this.lostListeners.get(plugin) ?? new Set<() => void>();
    this.lostListeners.set(plugin, set);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** The job queue of a persistent node (by its store dir), shared by its connections. */
  jobQueue(nodeDir: string): JobQueue {
    let q = this.queues.get(nodeDir);
    if (!q) this.queues.set(nodeDir, (q = new JobQueue()));
    return q;
  }

  /** Receive a plugin's unsolicited input for one node; returns the unsubscribe function. */
  watch(plugin: string, nodeUri: string, fn: (n: WatchNotice) => void): () => void {
    const byUri = this.watchers.get(plugin) ?? new Map<string, Array<(n: WatchNotice) => void>>();
    this.watchers.set(plugin, byUri);
    const list = byUri.get(nodeUri) ?? [];
    byUri.set(nodeUri, list);
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  private dispatch(plugin: string, n: WatchNotice) {
    const fn = this.watchers.get(plugin)?.get(n.nodeUri)?.[0];
    if (fn) fn(n);
    else this.opts.onLog?.(plugin, 'debug', `no connection to ${n.nodeUri} for an event of domain ${n.domain}; dropped`);
  }

  constructor(private c: DependencyContainer) {}

  private get opts(): HostOptions {
    return this.c.resolve<HostOptions>(TOKENS.HostOptions);
  }

  catalog(): Promise<PluginPackage[]> {
    this.catalogCache ??= discoverPlugins(this.opts.pluginSearch ?? defaultSearch(), this.opts.pluginPaths ?? []);
    return this.catalogCache;
  }

  async summaries(): Promise<PluginSummary[]> {
    return (await this.catalog()).map((p) => ({ name: p.name, version: p.version, schemes: p.manifest.schemes, world: p.manifest.world, grants: p.manifest.grants, dir: p.dir }));
  }

  async forScheme(scheme: string): Promise<LoadedPlugin> {
    const all = await this.catalog();
    const claims = all.filter((p) => p.manifest.schemes.includes(scheme));
    // The operator's explicit plugin paths win; otherwise two claimants are ambiguous.
    const explicit = claims.filter((p) => (this.opts.pluginPaths ?? []).some((d) => resolve(d) === p.dir));
    if (claims.length > 1 && explicit.length !== 1) {
      throw new VirtkitError('PLUGIN_REFUSED', `${claims.map((p) => `${p.name}@${p.version} (${p.dir})`).join(' and ')} all claim ${scheme}:// URIs: uninstall all but one, or name the one to use in pluginPaths`);
    }
    const pkg = explicit[0] ?? claims[0];
    if (!pkg) {
      const have = all.map((p) => `${p.manifest.schemes.map((s) => `${s}://`).join(', ')} (${p.name}@${p.version})`);
      throw new VirtkitError('NO_DRIVER', `no installed plugin handles ${scheme}:// URIs; installed: ${have.length ? have.join('; ') : 'none'}. Install the plugin package for it, or name its directory in the host's pluginPaths`);
    }
    return this.load(pkg);
  }

  load(pkg: PluginPackage): Promise<LoadedPlugin> {
    let p = this.loaded.get(pkg.name);
    if (!p) {
      p = this.doLoad(pkg);
      this.loaded.set(pkg.name, p);
      p.catch(() => this.loaded.delete(pkg.name));
    }
    return p;
  }

  private async doLoad(pkg: PluginPackage): Promise<LoadedPlugin> {
    const opts = this.opts;
    const roots = { ...defaultRoots(), ...definedOnly(opts) };
    // Everything that can refuse the plugin runs before any of its code does.
    checkWorld(`${pkg.name}@${pkg.version}`, pkg.manifest.world);
    const stateDir = join(roots.stateRoot, 'plugins', slug(pkg.name));
    const runtimeDir = join(roots.runtimeRoot, slug(pkg.name));
    const grants = decideGrants(this.c.resolve<GrantPolicy>(TOKENS.Policy), pkg, { stateDir, runtimeDir });
    const glue = await loadGlue(`${pkg.name}@${pkg.version}`, pkg.componentPath, roots.cacheDir);
    const exported = glue.exports.find((e) => e.startsWith('virtkit:driver/driver@'));
    const builtFor = pkg.manifest.world.split('@')[1];
    if (exported && builtFor && exported !== `virtkit:driver/driver@${builtFor}`) {
      throw new VirtkitError('PLUGIN_REFUSED', `plugin ${pkg.name}@${pkg.version}: its manifest says world @${builtFor} but its component exports ${exported}`);
    }
    for (const d of [stateDir, runtimeDir]) await mkdir(d, { recursive: true, mode: 0o700 });

    const child = this.c.createChildContainer();
    child.register(TOKENS.Plugin, { useValue: pkg });
    child.register(TOKENS.PluginGrants, { useValue: grants });
    child.register(TOKENS.PluginHost, {
      useFactory: instanceCachingFactory(
        (c) => new PluginHost({ plugin: `${pkg.name}@${pkg.version}`, glueDir: glue.dir, grants: c.resolve<Grants>(TOKENS.PluginGrants), stepTimeoutMs: opts.stepTimeoutMs, limits: opts.limits, onLog: opts.onLog, onWatch: (n) => this.dispatch(pkg.name, n), onLost: () => { for (const fn of this.lostListeners.get(pkg.name) ?? []) fn(); } }),
      ),
    });
    const host = child.resolve<PluginHost>(TOKENS.PluginHost);
    const description = await host.start();
    const missing = pkg.manifest.schemes.filter((s) => !description.uriSchemes.includes(s));
    if (missing.length) {
      await host.close();
      throw new VirtkitError('PLUGIN_REFUSED', `plugin ${pkg.name}@${pkg.version}: manifest claims ${missing.join(', ')}:// but the driver serves ${description.uriSchemes.join(', ')}`);
    }
    const nodesDir = join(roots.stateRoot, 'nodes', slug(pkg.name));
    return { pkg, description, grants, stateDir, runtimeDir, nodesDir, host, container: child };
  }

  async close(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.all(all.map((p) => p.then((l) => l.host.close(), () => {})));
  }
}

function definedOnly(o: HostOptions): Partial<ReturnType<typeof defaultRoots>> {
  const out: Partial<ReturnType<typeof defaultRoots>> = {};
  if (o.stateRoot) out.stateRoot = o.stateRoot;
  if (o.runtimeRoot) out.runtimeRoot = o.runtimeRoot;
  if (o.cacheDir) out.cacheDir = o.cacheDir;
  return out;
}

/** A host: its own DI scope, plugin manager and loaded workers. */
export class Host {
  readonly container: DependencyContainer;

  constructor(readonly options: HostOptions = {}) {
    this.container = rootContainer.createChildContainer();
    this.container.register(TOKENS.HostOptions, { useValue: options });
    this.container.register(TOKENS.Policy, { useValue: typeof options.policy === 'object' ? options.policy : undefined });
    this.container.register(TOKENS.Plugins, { useFactory: instanceCachingFactory((c) => new PluginManager(c)) });
  }

  /** Reads the policy file, if any; must run before plugins load. */
  async init(): Promise<this> {
    if (typeof this.options.policy !== 'object') {
      this.container.register(TOKENS.Policy, { useValue: await loadPolicy(this.options.policy) });
    }
    return this;
  }

  get plugins(): PluginManager {
    return this.container.resolve<PluginManager>(TOKENS.Plugins);
  }

  get worldVersion(): string {
    return HOST_WORLD_ID;
  }

  async close(): Promise<void> {
    await this.plugins.close();
  }
}

let shared: Promise<Host> | undefined;
/** The process-wide host that connect() uses unless given one. */
export function defaultHost(): Promise<Host> {
  shared ??= new Host().init();
  return shared;
}
