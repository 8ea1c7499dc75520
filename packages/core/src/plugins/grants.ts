// Grants: what a plugin may touch. A manifest requests them, the operator's policy gives
// them, and the Wasm host checks every effect against what was given.
import { realpathSync } from 'node:fs';
import { dirname, basename, isAbsolute, join, resolve, sep } from 'node:path';
import { VirtkitError } from '../errors.js';

/** Grants as a manifest or policy writes them: may use ${stateDir} and ${runtimeDir}. */
/**
 * A program the driver may run. With `args`, only argument lists matching that regular
 * expression (anchored; the arguments joined by single spaces, none of which may contain
 * whitespace) may be passed: a grant to run `ip link set ...` is not a grant to run
 * `ip netns exec ... sh`.
 */
export type ExecutableGrant = string | { path: string; args: string };

export interface GrantSpec {
  /** Programs the driver may spawn: absolute paths, optionally with an argument pattern. */
  executables?: ExecutableGrant[];
  /** Path prefixes the driver may read, stat and list. */
  read?: string[];
  /** Path prefixes the driver may write, create and remove under (implies read). */
  write?: string[];
  /** Directories whose unix sockets the driver may connect to. */
  sockets?: string[];
  /** Device nodes the driver may name (checked by drivers that pass them to a hypervisor). */
  devices?: string[];
}

export const GRANT_KINDS = ['executables', 'read', 'write', 'sockets', 'devices'] as const;
export type GrantKind = (typeof GRANT_KINDS)[number];

/** Grants with variables expanded and every path resolved through symlinks. */
export type Grants = Record<GrantKind, string[]> & {
  /** Resolved executable -> the argument pattern it is pinned to (absent: any arguments). */
  argPatterns: Record<string, string>;
};

export interface GrantVars {
  stateDir: string;
  runtimeDir: string;
}

function expand(p: string, vars: GrantVars): string {
  return p.replace(/\$\{(stateDir|runtimeDir)\}/g, (_, k: keyof GrantVars) => vars[k]);
}

/**
 * Resolves a path the way the kernel would reach it: `..` and symlinks of every existing
 * ancestor resolved, the not-yet-existing tail kept as written. Checking this form closes
 * the `../` and symlink escapes out of a granted prefix.
 */
export function resolveReal(p: string): string {
  const abs = resolve(p);
  let head = abs;
  const tail: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...tail.reverse());
    } catch {
      const parent = dirname(head);
      if (parent === head) return abs;
      tail.push(basename(head));
      head = parent;
    }
  }
}

export function resolveGrants(spec: GrantSpec, vars: GrantVars): Grants {
  const out = { argPatterns: {} } as unknown as Grants;
  const abs = (kind: string, p: string) => {
    const e = expand(p, vars);
    if (!isAbsolute(e)) throw new VirtkitError('INVALID_ARGUMENT', `grant ${kind}: ${JSON.stringify(p)} is not an absolute path`);
    return resolveReal(e);
  };
  for (const kind of GRANT_KINDS) {
    if (kind === 'executables') {
      out.executables = (spec.executables ?? []).map((g) => {
        if (typeof g === 'string') return abs(kind, g);
        const real = abs(kind, g.path);
        try {
          new RegExp(g.args);
        } catch (e) {
          throw new VirtkitError('INVALID_ARGUMENT', `grant executables: argument pattern for ${g.path} is not a regular expression: ${(e as Error).message}`);
        }
        out.argPatterns[real] = g.args;
        return real;
      });
    } else {
      out[kind] = ((spec[kind] ?? []) as string[]).map((p) => abs(kind, p));
    }
  }
  return out;
}

export function within(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix.endsWith(sep) ? prefix : prefix + sep);
}

/** Which requested grants the given ones do not cover (empty when all are covered). */
export function uncovered(requested: Grants, given: Grants): string[] {
  const missing: string[] = [];
  for (const kind of GRANT_KINDS) {
    for (const p of requested[kind]) {
      let ok = kind === 'executables' || kind === 'devices' ? given[kind].includes(p) : given[kind].some((g) => within(p, g));
      // A pinned grant covers a request only for the same pattern (or none pinned at all).
      if (ok && kind === 'executables' && given.argPatterns[p] !== undefined && given.argPatterns[p] !== requested.argPatterns[p]) ok = false;
      if (!ok) missing.push(`${kind} ${p}${requested.argPatterns[p] ? ` (args ${requested.argPatterns[p]})` : ''}`);
    }
  }
  return missing;
}

/** The checks the host makes on each effect. Each throws GRANT_DENIED naming what was refused. */
export class GrantChecker {
  constructor(readonly plugin: string, readonly grants: Grants) {}

  private deny(what: string): never {
    throw new VirtkitError('GRANT_DENIED', `plugin ${this.plugin} is not granted ${what}`);
  }

  /** The resolved program to run, if it is granted with these arguments. */
  executable(path: string, args: string[] = []): string {
    if (!isAbsolute(path)) this.deny(`to run ${JSON.stringify(path)}: executables must be absolute paths`);
    const real = resolveReal(path);
    if (!this.grants.executables.includes(real)) this.deny(`to run ${path}`);
    const pattern = this.grants.argPatterns?.[real];
    if (pattern !== undefined && (args.some((a) => /\s/.test(a) || a === '') || !new RegExp(`^(?:${pattern})$`).test(args.join(' ')))) {
      this.deny(`to run ${path} with arguments ${JSON.stringify(args)} (allowed: ${pattern})`);
    }
    return real;
  }

  private path(kind: 'read' | 'write' | 'sockets', path: string, verb: string): string {
    if (typeof path !== 'string' || !isAbsolute(path) || path.includes('\0')) this.deny(`to ${verb} ${JSON.stringify(path)}: paths must be absolute`);
    const real = resolveReal(path);
    const prefixes = kind === 'read' ? [...this.grants.read, ...this.grants.write] : this.grants[kind];
    if (!prefixes.some((p) => within(real, p))) this.deny(`to ${verb} ${path}${real !== resolve(path) ? ` (resolves to ${real})` : ''}`);
    return real;
  }

  read(path: string): string {
    return this.path('read', path, 'read');
  }

  write(path: string): string {
    return this.path('write', path, 'write');
  }

  socket(path: string): string {
    return this.path('sockets', path, 'connect to');
  }
}
