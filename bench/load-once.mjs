// One plugin load in a fresh process, printed as JSON on stdout; run.mjs starts it 5 times
// per case so no module or compile cache carries over.
//
//   node bench/load-once.mjs virtkit CACHE_DIR   new Host(...).init() + forScheme('test')
//   node bench/load-once.mjs raw GLUE_DIR        floor: bare worker + glue, glue already made
//   node bench/load-once.mjs raw-cold CACHE_DIR  floor: jco transpile, then the same
//
// Times are from the start of this script (performance.now() also counts Node's own
// start-up before it: reported as nodeBootMs, not included).
const t0 = performance.now();
const { mkdtempSync, rmSync } = await import('node:fs');
const { mkdir, readFile, writeFile } = await import('node:fs/promises');
const { createRequire } = await import('node:module');
const { tmpdir } = await import('node:os');
const { dirname, join } = await import('node:path');
const { fileURLToPath, pathToFileURL } = await import('node:url');
const { Worker } = await import('node:worker_threads');

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const component = join(root, 'packages/plugin-test/dist/plugin-test.wasm');
const [mode, dir] = process.argv.slice(2);
const out = { mode, nodeBootMs: t0 };

/** Loads the glue in a bare worker; resolves with the description and the time it arrived. */
async function rawLoad(glueDir) {
  const w = new Worker(join(root, 'bench/raw-worker.mjs'), { workerData: { glueDir } });
  const description = await new Promise((ok, fail) => {
    w.once('message', ok);
    w.once('error', fail);
  });
  const at = performance.now();
  await w.terminate();
  return { description, at };
}

if (mode === 'virtkit') {
  const { Host } = await import(pathToFileURL(join(root, 'packages/core/dist/index.js')).href);
  const tImported = performance.now();
  const tmp = mkdtempSync(join(tmpdir(), 'virtkit-bench-load-'));
  const host = await new Host({
    stateRoot: join(tmp, 'state'),
    runtimeRoot: join(tmp, 'run'),
    cacheDir: dir,
    // An installed plugin, found the normal way: in node_modules up from an application.
    pluginSearch: [join(root, 'packages/cli')],
  }).init();
  const plugin = await host.plugins.forScheme('test');
  const t1 = performance.now();
  Object.assign(out, { totalMs: t1 - t0, importMs: tImported - t0, loadMs: t1 - tImported, driver: plugin.description.name });
  await host.close();
  rmSync(tmp, { recursive: true, force: true });
} else if (mode === 'raw') {
  const r = await rawLoad(dir);
  Object.assign(out, { totalMs: r.at - t0, driver: r.description.name });
} else if (mode === 'raw-cold') {
  // What core's glue loader must do on a cold cache, without its checks: transpile, write.
  const req = createRequire(join(root, 'packages/core/package.json'));
  const { transpileBytes } = await import(pathToFileURL(req.resolve('@bytecodealliance/jco-transpile')).href);
  const t = await transpileBytes(await readFile(component), { name: 'driver', instantiation: { tag: 'async' }, noTypescript: true, quiet: true });
  const glueDir = join(dir, 'raw');
  for (const [name, data] of Object.entries(t.files)) {
    await mkdir(dirname(join(glueDir, name)), { recursive: true });
    await writeFile(join(glueDir, name), data);
  }
  const tTranspiled = performance.now();
  const r = await rawLoad(glueDir);
  Object.assign(out, { totalMs: r.at - t0, transpileMs: tTranspiled - t0, driver: r.description.name });
} else {
  console.error('usage: load-once.mjs virtkit|raw|raw-cold DIR');
  process.exit(2);
}
process.stdout.write(JSON.stringify(out) + '\n');
