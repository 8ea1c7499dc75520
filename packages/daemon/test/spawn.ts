// The BUILT virtkitd (run `pnpm build` first) as a child process of a test, its JSON log (stderr)
// kept: shared by every daemon test that starts one.
import { spawn, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import { DAEMON } from './guest.js';

export interface RunningDaemon {
  child: ChildProcess;
  /** Everything it has logged so far. */
  log(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnDaemon(config: string, cwd: string): RunningDaemon {
  const child = spawn(process.execPath, [DAEMON, '--config', config], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return { child, log: () => err, exit };
}

/** The first match of `re` in its log, once there; rejects if it exits first or after `ms`. */
export function logMatch(d: RunningDaemon, re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      d.child.stderr!.off('data', check);
    };
    const check = () => {
      const m = re.exec(d.log());
      if (m) {
        done();
        resolve(m);
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`virtkitd did not log ${re} within ${ms} ms: ${d.log()}`));
    }, ms);
    d.child.stderr!.on('data', check);
    void d.exit.then(({ code }) => {
      done();
      reject(new Error(`virtkitd exited (${code}): ${d.log()}`));
    });
    check();
  });
}

/** Waits (up to 3 s) until the daemon's log matches: its stderr may lag the client's answer. */
export async function logged(d: RunningDaemon, re: RegExp): Promise<void> {
  for (let i = 0; i < 60 && !re.test(d.log()); i++) await new Promise((r) => setTimeout(r, 50));
  expect(d.log()).toMatch(re);
}
