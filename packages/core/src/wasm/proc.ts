// What core reads of a process from /proc: for effects (process-info, waits) in a plugin's
// worker, and for info answered on the main thread (connection/info-reuse.ts).
import { readFileSync, realpathSync } from 'node:fs';

const CLOCK_TICKS = 100n;

export interface ProcStat {
  /** One letter: R, S, D, Z (zombie), X (dead), T, ... */
  state: string;
  /** utime + stime of every thread, in ns. */
  cpuTimeNs: bigint;
  /** When it started, in clock ticks since boot: with the pid, names one process across pid reuse. */
  startTimeTicks: bigint;
}

/** Parses /proc/PID/stat. The fields after the parenthesised command name count from its end: the name may hold spaces or ')'. */
export function parseStat(stat: string): ProcStat {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, cpuTimeNs: ((BigInt(f[11]!) + BigInt(f[12]!)) * 1_000_000_000n) / CLOCK_TICKS, startTimeTicks: BigInt(f[19]!) };
}

/** /proc/PID/stat, parsed; undefined when there is no such process. */
export function readStat(pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether a process is gone or a zombie (exited, not yet reaped). */
export function hasExited(pid: number): boolean {
  const state = readStat(pid)?.state;
  return state === undefined || state === 'Z' || state === 'X';
}

/** The program a process runs (/proc/PID/exe, symlinks resolved); undefined when it cannot be read: gone, a kernel thread, another user's. */
export function executableOf(pid: number): string | undefined {
  try {
    return realpathSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}
