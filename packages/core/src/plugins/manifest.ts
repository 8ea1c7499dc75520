// A plugin is an npm package whose package.json has a `virtkit` field: its manifest.
// Everything is checked here, before any of the plugin runs.
import { readFile, readdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import parseSemver from 'semver/functions/parse.js';
import { VirtkitError } from '../errors.js';
import { GRANT_KINDS, type GrantSpec } from './grants.js';

/**
 * The world this host implements. Plugins built against it (same major, minor <= ours) load.
 * 0.2.0 added the `exec` operation kind; 0.3.0 the `info-reuse` field of an outcome (the host
 * answers `info` itself from the driver's last answer). Older components load unchanged: they
 * cannot list exec, and their outcomes, lifted with their own types, have no info-reuse.
 */
export const HOST_WORLD = { package: 'virtkit:driver', world: 'hypervisor-driver', version: '0.3.0' } as const;
export const HOST_WORLD_ID = `${HOST_WORLD.package}/${HOST_WORLD.world}@${HOST_WORLD.version}`;

export interface PluginManifest {
  kind: 'hypervisor-driver';
  /** e.g. "virtkit:driver/hypervisor-driver@0.3.0": the WIT world and exact version built against. */
  world: string;
  /** The component file, relative to the package. */
  component: string;
  /** URI schemes the driver serves (checked against its own description at load). */
  schemes: string[];
  grants: GrantSpec;
}

export interface PluginPackage {
  /** npm package name. */
  name: string;
  version: string;
  dir: string;
  manifest: PluginManifest;
  componentPath: string;
}

const refuse = (plugin: string, why: string) => new VirtkitError('PLUGIN_REFUSED', `plugin ${plugin}: ${why}`);

export function parseManifest(plugin: string, raw: unknown): PluginManifest {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw refuse(plugin, 'package.json "virtkit" must be an object');
  const m = raw as Record<string, unknown>;
  if (m.kind !== 'hypervisor-driver') throw refuse(plugin, `virtkit.kind ${JSON.stringify(m.kind)} is not a kind this host loads (hypervisor-driver)`);
  if (typeof m.world !== 'string') throw refuse(plugin, 'virtkit.world is missing (e.g. "virtkit:driver/hypervisor-driver@0.3.0")');
  if (typeof m.component !== 'string' || isAbsolute(m.component) || m.component.split(/[\\/]/).includes('..')) {
    throw refuse(plugin, 'virtkit.component must be a path inside the package');
  }
  if (!Array.isArray(m.schemes) || m.schemes.length === 0 || !m.schemes.every((s) => typeof s === 'string' && /^[a-z][a-z0-9-]*$/.test(s))) {
    throw refuse(plugin, 'virtkit.schemes must list the URI schemes the driver serves, e.g. ["qemu"]');
  }
  const grants = (m.grants ?? {}) as Record<string, unknown>;
  if (typeof grants !== 'object' || Array.isArray(grants)) throw refuse(plugin, 'virtkit.grants must be an object');
  for (const [k, v] of Object.entries(grants)) {
    if (!(GRANT_KINDS as readonly string[]).includes(k)) throw refuse(plugin, `virtkit.grants.${k} is not a grant kind (${GRANT_KINDS.join(', ')})`);
    const okEntry = (p: unknown) =>
      typeof p === 'string' || (k === 'executables' && typeof p === 'object' && p !== null && typeof (p as { path?: unknown }).path === 'string' && typeof (p as { args?: unknown }).args === 'string');
    if (!Array.isArray(v) || !v.every(okEntry)) throw refuse(plugin, `virtkit.grants.${k} must be a list of paths${k === 'executables' ? ' (or {"path", "args"} objects)' : ''}`);
  }
  return { kind: 'hypervisor-driver', world: m.world, component: m.component, schemes: m.schemes as string[], grants: grants as GrantSpec };
}

/** Same package and world, same major, and a minor no newer than the host's. */
export function checkWorld(plugin: string, world: string): void {
  const match = /^([a-z0-9-]+:[a-z0-9-]+)\/([a-z0-9-]+)@(.+)$/.exec(world);
  if (!match) throw refuse(plugin, `virtkit.world ${JSON.stringify(world)} is not of the form ns:pkg/world@version`);
  const [, pkg, name, version] = match;
  if (pkg !== HOST_WORLD.package || name !== HOST_WORLD.world) {
    throw refuse(plugin, `built for world ${pkg}/${name}, this host implements ${HOST_WORLD.package}/${HOST_WORLD.world}`);
  }
  const v = parseSemver(version);
  const h = parseSemver(HOST_WORLD.version)!;
  if (!v) throw refuse(plugin, `world version ${JSON.stringify(version)} is not semver`);
  if (v.major !== h.major || v.minor > h.minor) {
    throw refuse(plugin, `built against ${HOST_WORLD.package}/${HOST_WORLD.world}@${version}, incompatible with this host's @${HOST_WORLD.version} (needs the same major and a minor no newer than ${h.major}.${h.minor})`);
  }
}

export async function readPluginPackage(dir: string): Promise<PluginPackage | undefined> {
  let pkg: { name?: string; version?: string; virtkit?: unknown };
  try {
    pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
  } catch {
    return undefined;
  }
  if (pkg.virtkit === undefined || typeof pkg.name !== 'string') return undefined;
  const manifest = parseManifest(pkg.name, pkg.virtkit);
  const componentPath = resolve(dir, manifest.component);
  if (!componentPath.startsWith(resolve(dir) + sep)) throw refuse(pkg.name, 'virtkit.component escapes the package');
  return { name: pkg.name, version: pkg.version ?? '0.0.0', dir, manifest, componentPath };
}

/**
 * Finds plugins among the packages installed where `from` resolves packages (every
 * node_modules up the tree), plus explicit plugin directories. The first found of a name wins.
 */
export async function discoverPlugins(from: string[], extraDirs: string[] = []): Promise<PluginPackage[]> {
  const found = new Map<string, PluginPackage>();
  const seen = new Set<string>();
  const add = async (dir: string, installed = true) => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const p = await readPluginPackage(dir);
    // An installed package sits at node_modules/<its name>: one that claims another name
    // (say @virtkit/...) where it does not live is not what it says.
    if (!p || (installed && !dir.endsWith(sep + p.name.split('/').join(sep)))) return;
    if (!found.has(p.name)) found.set(p.name, p);
  };
  for (const d of extraDirs) {
    const p = await readPluginPackage(resolve(d));
    if (!p) throw new VirtkitError('NOT_FOUND', `plugin path ${d} has no package.json with a "virtkit" manifest`);
    await add(resolve(d), false);
  }
  for (const start of from) {
    for (let dir = resolve(start); ; dir = dirname(dir)) {
      const nm = join(dir, 'node_modules');
      const entries = await readdir(nm, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        if (e.name.startsWith('@')) {
          const scoped = await readdir(join(nm, e.name)).catch(() => []);
          for (const s of scoped) await add(join(nm, e.name, s));
        } else {
          await add(join(nm, e.name));
        }
      }
      if (dirname(dir) === dir) break;
    }
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}
