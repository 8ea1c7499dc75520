#!/usr/bin/env node
// Builds the workspace: TypeScript (tsc -b), then every driver component with the SDK.
// Components are cached in .cache/components by a hash of their sources, the SDK, the WIT
// and the toolchain versions, so a second build is quick.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, copyFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => process.stderr.write(`build: ${m}\n`);

// The SDK ships the WIT it builds against; core ships the host-side generated types.
cpSync(join(root, 'wit/driver'), join(root, 'packages/driver-sdk/wit/driver'), { recursive: true });
// tsc does not copy .d.ts sources: put the generated ones in dist first, where the
// declarations of core (and the packages built against them) import them from.
for (const pkg of ['core', 'rpc']) {
  cpSync(join(root, `packages/${pkg}/src/generated`), join(root, `packages/${pkg}/dist/generated`), { recursive: true, filter: (s) => statSync(s).isDirectory() || s.endsWith('.d.ts') });
}
log('tsc -b');
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b'], { cwd: root, stdio: 'inherit' });

/** Driver components: [entry, output, extra source dirs]. */
const components = [
  ['packages/plugin-test/src/driver.ts', 'packages/plugin-test/dist/plugin-test.wasm'],
  ['packages/plugin-kvm/src/driver.ts', 'packages/plugin-kvm/dist/plugin-kvm.wasm'],
  ['packages/plugin-lxc/src/driver.ts', 'packages/plugin-lxc/dist/plugin-lxc.wasm'],
  ['examples/hello-driver/src/driver.ts', 'examples/hello-driver/dist/hello-driver.wasm'],
  // Test fixtures: plugins/<name>/driver.ts -> plugins/<name>/driver.wasm
  ...readdirSync(join(root, 'packages/core/test/fixtures/plugins'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, 'packages/core/test/fixtures/plugins', d.name, 'driver.ts')))
    .map((d) => [`packages/core/test/fixtures/plugins/${d.name}/driver.ts`, `packages/core/test/fixtures/plugins/${d.name}/driver.wasm`]),
].filter(([entry]) => existsSync(join(root, entry)));

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? (d.name === 'dist' ? [] : files(join(dir, d.name))) : [join(dir, d.name)]));
}

const toolchain = ['@bytecodealliance/jco', '@bytecodealliance/componentize-js'].map((p) => {
  const dir = join(root, 'packages/driver-sdk/node_modules', p);
  return `${p}@${JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version}`;
});

/** A fixture named world-X.Y.Z is built against the frozen WIT copy fixtures/wit-X.Y.Z (an old contract version). */
function witOf(entry) {
  const m = /\/fixtures\/plugins\/world-(\d+\.\d+\.\d+)\/driver\.ts$/.exec(entry);
  return m ? join(root, dirname(dirname(dirname(entry))), `wit-${m[1]}`) : undefined;
}

function keyOf(entry) {
  const h = createHash('sha256').update(toolchain.join(',')).update(process.version).update(entry);
  const inputs = [...files(dirname(join(root, entry))).filter((f) => f.endsWith('.ts')), ...files(join(root, 'packages/driver-sdk/src')), ...files(witOf(entry) ?? join(root, 'wit')), join(root, 'packages/driver-sdk/bundle.config.mjs')].sort();
  for (const f of inputs) h.update(relative(root, f)).update(readFileSync(f));
  return h.digest('hex').slice(0, 32);
}

const cache = join(root, '.cache/components');
mkdirSync(cache, { recursive: true });

function build(entry, out) {
  const cached = join(cache, `${keyOf(entry)}.wasm`);
  mkdirSync(dirname(join(root, out)), { recursive: true });
  if (existsSync(cached)) {
    copyFileSync(cached, join(root, out));
    return Promise.resolve(`${out} (cached)`);
  }
  return new Promise((ok, fail) => {
    // A fixture named wasi-* keeps WASI imports, to test that the host refuses it.
    const keepWasi = /\/wasi-[^/]*\/driver\.ts$/.test(entry) ? ['--keep-wasi'] : [];
    const wit = witOf(entry) ? ['--wit', witOf(entry)] : [];
    const child = spawn(process.execPath, [join(root, 'packages/driver-sdk/bin/virtkit-driver.js'), 'build', join(root, entry), '-o', cached, ...keepWasi, ...wit], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      if (code !== 0) return fail(new Error(`${entry}: ${err}`));
      copyFileSync(cached, join(root, out));
      ok(`${out} (built)`);
    });
  });
}

// Two at a time: componentize is CPU-bound and this machine has two cores.
const queue = [...components];
await Promise.all([0, 1].map(async () => {
  while (queue.length) {
    const [entry, out] = queue.shift();
    log(await build(entry, out));
  }
}));
