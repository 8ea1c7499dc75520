// `info` answered by the host itself, as libvirt's QEMU driver answers virDomainGetInfo from
// its in-memory domain object and /proc without a word to QEMU. A driver that says so (world
// 0.3.0 `info-reuse`) declares its info a function of the request (config, status, runtime
// record) and of one moving counter, the CPU time, whose source it names. A later `info` whose
// request is the same is answered from that answer, with the CPU time read now: no worker hop,
// no driver step. Anything the domain goes through changes its status or runtime record (and a
// config change, its config), so the request differs and the driver is asked again; the store
// is read as before, so a change made by another process is seen the same way.
import { realpathSync } from 'node:fs';
import type { CpuTimeSource, DomainInfo, DomainStatus, Outcome } from '../types.js';
import { readStat } from '../wasm/proc.js';

/** What an `info` request is, for reuse: the fields a driver's info may depend on. */
export interface InfoRequestKey {
  config: string;
  status: DomainStatus;
  runtime: string | undefined;
}

interface Entry extends InfoRequestKey {
  info: DomainInfo;
  payload: string | undefined;
  source: CpuTimeSource;
  /** For a process source: the process the driver measured (its start time), so a reused pid is not read. */
  startTimeTicks?: bigint;
}

const sameKey = (a: InfoRequestKey, b: InfoRequestKey) =>
  a.runtime === b.runtime && a.status.state === b.status.state && a.status.reason === b.status.reason && a.config === b.config;

export class InfoReuse {
  readonly #entries = new Map<string, Entry>();

  /**
   * @param executables the plugin's granted executables: a process source must run one of
   *   them (the check the process-info effect makes), or the info is not reused.
   * @param onRefused told once per domain when a driver named a process it may not read.
   */
  constructor(
    private readonly executables: readonly string[],
    private readonly onRefused?: (domain: string, why: string) => void,
  ) {}

  /** The info for this request, if the driver's last answer for the domain holds for it; undefined: run the driver. */
  answer(domain: string, key: InfoRequestKey): { info: DomainInfo; payload: string | undefined } | undefined {
    const e = this.#entries.get(domain);
    if (!e) return undefined;
    if (!sameKey(e, key)) {
      this.#entries.delete(domain);
      return undefined;
    }
    let cpuTimeNs = e.info.cpuTimeNs;
    if (e.source.tag === 'monotonic') {
      const elapsed = process.hrtime.bigint() - e.source.val;
      cpuTimeNs += elapsed > 0n ? elapsed : 0n;
    } else if (e.source.tag === 'process') {
      const st = readStat(e.source.val);
      // Gone, or the pid is another process's now: the driver knows what that means.
      if (!st || st.startTimeTicks !== e.startTimeTicks || st.state === 'Z' || st.state === 'X') {
        this.#entries.delete(domain);
        return undefined;
      }
      cpuTimeNs = st.cpuTimeNs;
    }
    return { info: { ...e.info, cpuTimeNs }, payload: e.payload };
  }

  /** Keeps the driver's answer when it says it may be reused (and a process source passes the grant check). */
  remember(domain: string, key: InfoRequestKey, out: Outcome): void {
    this.#entries.delete(domain);
    const source = out.infoReuse;
    if (!source || !out.info) return;
    const entry: Entry = { ...key, status: { ...key.status }, info: { ...out.info }, payload: out.payload, source: { ...source } as CpuTimeSource };
    if (source.tag === 'monotonic') entry.source = { tag: 'monotonic', val: BigInt(source.val) };
    if (source.tag === 'process') {
      const pid = source.val;
      const why = this.#refusal(pid);
      if (why) return this.onRefused?.(domain, why);
      const st = readStat(pid);
      if (!st) return;
      entry.startTimeTicks = st.startTimeTicks;
    }
    this.#entries.set(domain, entry);
  }

  forget(domain: string): void {
    this.#entries.delete(domain);
  }

  /** Why the host will not read this pid for the plugin (undefined: it may). */
  #refusal(pid: number): string | undefined {
    if (!Number.isInteger(pid) || pid <= 1) return `pid ${pid} is not a process the driver may name`;
    let exe: string;
    try {
      exe = realpathSync(`/proc/${pid}/exe`);
    } catch {
      return undefined; // gone already: readStat fails too, nothing is kept
    }
    return this.executables.includes(exe) ? undefined : `pid ${pid} runs ${exe}, which is not a granted executable`;
  }
}
