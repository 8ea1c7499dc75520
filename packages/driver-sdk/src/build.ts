// The driver build step: TypeScript driver -> Wasm component (jco componentize, QuickJS
// backend, no WASI), checked to import nothing but virtkit's host interface.
import { spawn } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface BuildOptions {
  /** The driver's entry module (.ts or .js) exporting `driver = defineDriver(...)`. */
  entry: string;
  /** The component file to write. */
  out: string;
  /** The WIT package dir (default: the one shipped with this SDK). */
  wit?: string;
  /**
   * Keep the QuickJS runtime's WASI imports. Only to test that a host refuses such a
   * component: virtkit hosts load no component that imports WASI.
   */
  keepWasi?: boolean;
}

/** The WIT this SDK was built with: wit/driver beside the package, or the repository's. */
export function witDir(): string {
  return join(pkgRoot, 'wit', 'driver');
}

function jcoBin(): string {
  // jco's exports map hides package.json: resolve its main entry, jco.js sits beside it.
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@bytecodealliance/jco')), 'jco.js');
}

export async function buildDriver(opts: BuildOptions): Promise<{ out: string; bytes: number }> {
  const entry = resolve(opts.entry);
  const out = resolve(opts.out);
  const wit = resolve(opts.wit ?? witDir());
  await mkdir(dirname(out), { recursive: true });
  // Absolute paths: jco 1.35 doubles a relative source path with the QuickJS backend.
  const args = [
    jcoBin(), 'componentize', entry, '--wit', wit, '--world-name', 'hypervisor-driver',
    '--backend', 'quickjs', '--backend-qjs-disable-async', ...(opts.keepWasi ? [] : ['--backend-qjs-stub-wasi']),
    '--bundle-config', join(pkgRoot, 'bundle.config.mjs'), '-o', out,
  ];
  await new Promise<void>((ok, fail) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? ok() : fail(new Error(`componentize ${opts.entry} failed (exit ${code}):\n${log}`))));
  });
  return { out, bytes: (await stat(out)).size };
}
