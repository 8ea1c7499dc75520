// The spawner: a small Node process the plugin worker starts once and asks to start its
// child processes. fork() copies the page tables of the process that calls it, so its cost
// grows with that process's memory: ~10 ms from a manager holding Wasm instances (~250 MB),
// ~1.5 ms from this process (~45 MB). Every effect was checked by the worker before it
// reaches here; this program only starts what it is told, as it is told (argv arrays, no
// shell), and reports pids, exits and output back. It exits when the worker goes away:
// detached children (their own session) live on, the others get their parent's death.
// Protocol (IPC, advanced serialization): SpawnerRequest / SpawnerReply in launcher.ts.
import { DirectLauncher, type SpawnerReply, type SpawnerRequest } from './launcher.js';

// The worker may be gone by the time we answer (a short-lived command that exits right after
// its last spawn): a reply that cannot be sent is dropped, never an error of ours.
const send = (m: SpawnerReply) => {
  if (process.connected) process.send?.(m, undefined, {}, () => {});
};
const direct = new DirectLauncher();
const running = new Map<number, AbortController>();
/** Background children that are not detached: they go when we go. */
const attached = new Set<number>();
const failed = (id: number) => (e: unknown) => send({ t: 'failed', id, message: (e as Error).message });

process.on('message', (m: SpawnerRequest) => {
  if (m.t === 'background') {
    const { id, t: _t, ...spec } = m;
    direct
      .background(spec, (x) => {
        attached.delete(x.pid);
        send({ t: 'exit', ...x });
      })
      .then((pid) => {
        if (!spec.detached) attached.add(pid);
        send({ t: 'spawned', id, pid });
      }, failed(id));
  } else if (m.t === 'run') {
    const { id, t: _t, ...spec } = m;
    const ac = new AbortController();
    running.set(id, ac);
    direct
      .run(spec, ac.signal)
      .then((r) => send({ t: 'ran', id, ...r }), failed(id))
      .finally(() => running.delete(id));
  } else if (m.t === 'kill') running.get(m.id)?.abort();
});
// The worker is gone (closed, stopped by the watchdog, or its process died): so is our reason
// to be, and so are the children that were not detached (runs in flight, attached background
// ones). Detached ones (a hypervisor in its own session) outlive us, as they outlive the host.
process.on('disconnect', () => {
  for (const ac of running.values()) ac.abort();
  for (const pid of attached) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  // The aborts kill on the next turn: leave after it.
  setImmediate(() => process.exit(0));
});
send({ t: 'ready', pid: process.pid });
