#!/usr/bin/env node
// A floor's commands, run from a small process of its own: fork() copies the page tables of
// the process that calls it, so a command spawned from a benchmark process that holds
// virtkit's host (and its Wasm worker) costs ~10 ms more than from a shell or a small
// program, and would flatter virtkit's ratio. Started with fork(); IPC:
//   { id, file, args } -> { id, ms } (spawn to exit, measured here) or { id, error }
import { execFile } from 'node:child_process';

process.on('message', ({ id, file, args }) => {
  const t0 = performance.now();
  execFile(file, args, (e, _stdout, stderr) => {
    const ms = performance.now() - t0;
    process.send(e ? { id, error: `${file} ${args.join(' ')}: ${stderr || e.message}` } : { id, ms });
  });
});
process.on('disconnect', () => process.exit(0));
