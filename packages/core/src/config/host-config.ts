// The host's own config file: where state lives, extra plugin paths, the grant policy.
// Looked up at $VIRTKIT_CONFIG, else /etc/virtkit/virtkit.json (root) or
// $XDG_CONFIG_HOME/virtkit/virtkit.json; a missing default file means all defaults.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { VirtkitError } from '../errors.js';
import type { HostOptions } from '../host.js';

export interface HostConfigFile {
  stateRoot?: string;
  runtimeRoot?: string;
  cacheDir?: string;
  /** Plugin package directories, besides installed packages (relative to this file). */
  pluginPaths?: string[];
  /** The grant policy file (relative to this file). */
  policy?: string;
  stepTimeoutMs?: number;
}

export function defaultHostConfigPath(): string {
  if (process.env.VIRTKIT_CONFIG) return process.env.VIRTKIT_CONFIG;
  if (process.getuid?.() === 0) return '/etc/virtkit/virtkit.json';
  return join(process.env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'virtkit', 'virtkit.json');
}

const PATHS = ['stateRoot', 'runtimeRoot', 'cacheDir', 'policy'] as const;

/** Reads a host config file into HostOptions; `path` given means it must exist. */
export async function loadHostConfig(path?: string): Promise<HostOptions> {
  const file = path ?? defaultHostConfigPath();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && path === undefined && !process.env.VIRTKIT_CONFIG) return {};
    throw new VirtkitError('NOT_FOUND', `host config ${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new VirtkitError('INVALID_CONFIG', `host config ${file} is not JSON: ${(e as Error).message}`);
  }
  const bad = (pointer: string, message: string) =>
    new VirtkitError('INVALID_CONFIG', `host config ${file}: ${pointer}: ${message}`, { fields: [{ pointer, message }] });
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw bad('', 'must be an object');
  const c = doc as Record<string, unknown>;
  const known = new Set<string>([...PATHS, 'pluginPaths', 'stepTimeoutMs']);
  for (const k of Object.keys(c)) if (!known.has(k)) throw bad(`/${k}`, `unknown property (known: ${[...known].join(', ')})`);
  const base = dirname(resolve(file));
  const out: HostOptions = {};
  for (const k of PATHS) {
    const v = c[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v === '' || v.includes('\0')) throw bad(`/${k}`, 'must be a path');
    out[k] = isAbsolute(v) ? v : resolve(base, v);
  }
  if (c.pluginPaths !== undefined) {
    if (!Array.isArray(c.pluginPaths)) throw bad('/pluginPaths', 'must be a list of paths');
    out.pluginPaths = c.pluginPaths.map((p, i) => {
      if (typeof p !== 'string' || p === '') throw bad(`/pluginPaths/${i}`, 'must be a path');
      return isAbsolute(p) ? p : resolve(base, p);
    });
  }
  if (c.stepTimeoutMs !== undefined) {
    if (!Number.isInteger(c.stepTimeoutMs) || (c.stepTimeoutMs as number) < 10) throw bad('/stepTimeoutMs', 'must be an integer >= 10');
    out.stepTimeoutMs = c.stepTimeoutMs as number;
  }
  return out;
}
