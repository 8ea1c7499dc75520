// The floor of a plugin load: a bare worker that imports the jco glue, compiles and
// instantiates the component and calls describe(), with none of virtkit's machinery
// (no discovery, manifest, policy, hashing, DI, effect performer).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';

setFlagsFromString('--experimental-wasm-extended-const');
const { glueDir } = workerData;
const host = { log() {} };
const { instantiate } = await import(pathToFileURL(join(glueDir, 'driver.js')).href);
const root = await instantiate(async (name) => WebAssembly.compile(await readFile(join(glueDir, name))), {
  'virtkit:driver/host': host,
  'virtkit:driver/host@0.1.0': host,
  'virtkit:driver/host@0.2.0': host,
});
parentPort.postMessage(root.driver.describe());
