// The floor of a plugin load: a bare worker that imports the jco glue, compiles and
// instantiates the component and calls describe(), with none of virtkit's machinery
// (no discovery, manifest, policy, hashing, DI, effect performer).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';

// Wasm extended-const, behind a flag in Node 20's V8 only (as core's worker sets it).
(await import(new URL('../packages/core/dist/wasm/wasm-features.js', import.meta.url).href)).enableWasmExtendedConst();
const { glueDir } = workerData;
const host = { log() {} };
const { instantiate } = await import(pathToFileURL(join(glueDir, 'driver.js')).href);
const root = await instantiate(async (name) => WebAssembly.compile(await readFile(join(glueDir, name))), {
  'virtkit:driver/host': host,
  'virtkit:driver/host@0.1.0': host,
  'virtkit:driver/host@0.2.0': host,
  'virtkit:driver/host@0.3.0': host,
});
parentPort.postMessage(root.driver.describe());
