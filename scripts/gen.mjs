#!/usr/bin/env node
// Regenerates the TypeScript types that come from the contract: the driver WIT (host side for
// core, guest side for the driver SDK, both by jco), the transport WIT (for packages/rpc,
// which checks the TypeScript transports against it) and the domain config JSON Schema.
// `--check` regenerates into a temp dir and fails when the committed files drifted.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const jco = join(root, 'packages/driver-sdk/node_modules/@bytecodealliance/jco/dist/jco.js');
// --wit DIR: check another WIT copy against the committed types (the drift test uses it).
const witArg = process.argv.indexOf('--wit');
const wit = witArg > 0 ? process.argv[witArg + 1] : join(root, 'wit/driver');
const targets = {
  host: join(root, 'packages/core/src/generated'),
  guest: join(root, 'packages/driver-sdk/src/generated'),
  ...(witArg < 0 ? { transport: join(root, 'packages/rpc/src/generated/transport') } : {}),
};
const out = check ? Object.fromEntries(Object.keys(targets).map((k) => [k, mkdtempSync(join(tmpdir(), `vk-gen-${k}-`))])) : targets;

const run = (args) => execFileSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
run([jco, 'types', wit, '--world-name', 'hypervisor-driver', '--instantiation', 'async', '-o', out.host, '-q']);
run([jco, 'guest-types', wit, '--world-name', 'hypervisor-driver', '-o', out.guest, '-q']);
if (out.transport) run([jco, 'types', join(root, 'wit/transport'), '--world-name', 'transport-provider', '-o', out.transport, '-q']);
if (witArg < 0) run([join(root, 'packages/core/scripts/gen-config-types.mjs'), ...(check ? ['--check'] : [])]);

function files(dir) {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
}

if (check) {
  const drift = [];
  for (const k of Object.keys(targets)) {
    for (const f of files(out[k])) {
      const rel = relative(out[k], f);
      let committed;
      try {
        committed = readFileSync(join(targets[k], rel), 'utf8');
      } catch {
        committed = undefined;
      }
      if (committed !== readFileSync(f, 'utf8')) drift.push(relative(root, join(targets[k], rel)));
    }
    rmSync(out[k], { recursive: true, force: true });
  }
  if (drift.length) {
    console.error(`generated types drifted from wit/: ${drift.join(', ')}\nrun \`pnpm gen\` and commit the result`);
    process.exit(1);
  }
  console.error('gen: generated types match wit/ and the domain schema');
}
