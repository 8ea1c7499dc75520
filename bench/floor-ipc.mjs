// A floor that runs in a small process of its own, asked over IPC (kvm.mjs: qemu-floor.mjs;
// lxc.mjs: run-floor.mjs). Not in the benchmark process: fork() copies the page tables of the
// process that calls it, and that one holds virtkit's host and its Wasm worker (~10 ms more a
// spawn). Requests carry an `id` (set here); the floor answers `{ id, ... }` or `{ id, error }`.
import { fork } from 'node:child_process';

/** Starts `script`; returns ask(message) -> the floor's answer. It never keeps this process alive. */
export function floorProcess(script) {
  const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.unref();
  child.channel?.unref();
  const calls = new Map();
  let ids = 0;
  child.on('message', (m) => {
    const p = calls.get(m.id);
    calls.delete(m.id);
    if (m.error) p?.reject(new Error(m.error));
    else p?.resolve(m);
  });
  return (message) =>
    new Promise((resolve, reject) => {
      const id = ++ids;
      calls.set(id, { resolve, reject });
      child.send({ ...message, id });
    });
}
