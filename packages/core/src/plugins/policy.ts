// The operator's grant policy: which plugins may load and what each is given.
// Shipped default: each plugin of this repository (@virtkit/*) gets exactly what it asks;
// any other plugin gets nothing until the policy names it, so one that asks for anything
// is refused with the list of what it would need.
import { readFile } from 'node:fs/promises';
import { VirtkitError } from '../errors.js';
import { GRANT_KINDS, resolveGrants, uncovered, type GrantSpec, type GrantVars, type Grants } from './grants.js';
import type { PluginPackage } from './manifest.js';

export interface PolicyEntry {
  /** false refuses the plugin outright. */
  allow?: boolean;
  /** "requested" gives what the manifest asks; an object gives exactly these. */
  grants?: 'requested' | GrantSpec;
}

export interface GrantPolicy {
  /** What plugins not named in `plugins` get. */
  default?: 'first-party-requested' | 'deny' | 'none';
  plugins?: Record<string, PolicyEntry>;
}

export const DEFAULT_POLICY: GrantPolicy = { default: 'first-party-requested', plugins: {} };

const FIRST_PARTY = /^@virtkit\//;

export async function loadPolicy(path: string | undefined): Promise<GrantPolicy> {
  if (!path) return DEFAULT_POLICY;
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new VirtkitError('INVALID_ARGUMENT', `grant policy ${path}: ${(e as Error).message}`);
  }
  const p = doc as GrantPolicy;
  if (p === null || typeof p !== 'object') throw new VirtkitError('INVALID_ARGUMENT', `grant policy ${path}: expected an object`);
  if (p.default !== undefined && !['first-party-requested', 'deny', 'none'].includes(p.default)) {
    throw new VirtkitError('INVALID_ARGUMENT', `grant policy ${path}: /default must be first-party-requested, deny or none`);
  }
  return { default: p.default ?? 'first-party-requested', plugins: p.plugins ?? {} };
}

/** The grants a plugin is given, or PLUGIN_REFUSED naming what the policy does not cover. */
export function decideGrants(policy: GrantPolicy, plugin: PluginPackage, vars: GrantVars): Grants {
  const requested = resolveGrants(plugin.manifest.grants, vars);
  const entry = policy.plugins?.[plugin.name];
  const label = `${plugin.name}@${plugin.version}`;
  if (entry?.allow === false || (!entry && policy.default === 'deny')) {
    throw new VirtkitError('PLUGIN_REFUSED', `plugin ${label} is not allowed by the grant policy`);
  }
  let given: Grants;
  if (entry?.grants === 'requested' || (!entry?.grants && policy.default === 'first-party-requested' && FIRST_PARTY.test(plugin.name))) {
    given = requested;
  } else if (entry?.grants && typeof entry.grants === 'object') {
    given = resolveGrants(entry.grants, vars);
  } else {
    given = { ...Object.fromEntries(GRANT_KINDS.map((k) => [k, []])), argPatterns: {} } as unknown as Grants;
  }
  const missing = uncovered(requested, given);
  if (missing.length > 0) {
    throw new VirtkitError('PLUGIN_REFUSED', `plugin ${label} requires grants the policy does not give: ${missing.join('; ')}`);
  }
  // A plugin gets what it asked for, never more, even when the policy would give more.
  return requested;
}
