#!/usr/bin/env node
// virtkit-driver build ENTRY -o OUT.wasm
import { parseArgs } from 'node:util';
import { buildDriver } from '../dist/index.js';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { out: { type: 'string', short: 'o' }, wit: { type: 'string' }, 'keep-wasi': { type: 'boolean' } } });
const [cmd, entry] = positionals;
if (cmd !== 'build' || !entry || !values.out) {
  console.error('usage: virtkit-driver build ENTRY.ts -o OUT.wasm [--wit DIR]');
  process.exit(2);
}
try {
  const r = await buildDriver({ entry, out: values.out, wit: values.wit, keepWasi: values['keep-wasi'] });
  console.error(`virtkit-driver: wrote ${r.out} (${(r.bytes / 1024).toFixed(0)} KiB)`);
} catch (e) {
  console.error(`virtkit-driver: ${e.message}`);
  process.exit(1);
}
