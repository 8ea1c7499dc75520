// `info` answered by the host itself, as libvirt's QEMU driver answers virDomainGetInfo from
// its in-memory domain object and /proc without a word to QEMU. A driver that says so (world
// 0.3.0 `info-reuse`) declares its info a function of the request (config, status, runtime
// record) and of one moving counter, the CPU time, whose source it names. A later `info` whose
// request is the same is answered from that answer, with the CPU time read now: no worker hop,
// no driver step. Anything the domain goes through changes its status or runtime record (and a
// config change, its config), so the request differs and the driver is asked again; the store
// is read as before, so a change made by another process is seen the same way.
import type { CpuTimeSource, DomainInfo, DomainStatus, Outcome } from '../types.js';
import { executableOf, readStat } from '../wasm/proc.js';

/** What an `info` request is, for reuse: the fields a driver's info may depend on. */
export interface InfoRequestKey {
  config: string;
  status: DomainStatus;
  runtime: string | undefined;
  /**
   * The stored record these came from, when the store hands out its own objects (the memory
   * store: a record is replaced, never changed in place): the same object is the same request,
   * without comparing the config.
   */
  record?: object;
}

interface Entry extends InfoRequestKey {
  info: DomainInfo;
  payload: string | undefined;
  source: CpuTimeSource;
}

const sameKey = (a: InfoRequestKey, b: InfoRequestKey) =>
  (a.record !== undefined && a.record === b.record) ||
  (a.runtime === b.runtime && a.status.state === b.status.state && a.status.reason === b.status.reason && a.config === b.config);

/** The process at pid, if it is the one that started at startTicks and has not exited. */
function sameProcess(pid: number, startTicks: bigint) {
  const st = readStat(pid);
  return st && st.startTimeTicks === startTicks && st.state !== 'Z' && st.state !== 'X' ? st : undefined;
}

export class InfoReuse {
  readonly #entries = new Map<string, Entry>();
  /** The last refusal told per domain: a driver naming the same process each time is logged once. */
  readonly #told = new Map<string, string>();

  /**
   * @param executables the plugin's granted executables: a process source must run one of
   *   them (the check the process-info effect makes), or the info is not reused.
   * @param onRefused told when a driver named a process the host may not read for it (once per
   *   domain and reason).
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
      // Gone, a zombie, or the pid is another process's now: the driver knows what that means.
      const st = sameProcess(...e.source.val);
      if (!st) {
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
    let copy: CpuTimeSource;
    if (source.tag === 'monotonic') copy = { tag: 'monotonic', val: BigInt(source.val) };
    else if (source.tag === 'process') {
      const [pid, startTicks] = [source.val[0], BigInt(source.val[1])];
      const why = this.#refusal(pid, startTicks);
      if (why !== undefined) {
        if (why && this.#told.get(domain) !== why) this.onRefused?.(domain, why);
        if (why) this.#told.set(domain, why);
        return;
      }
      copy = { tag: 'process', val: [pid, startTicks] };
    } else copy = { tag: 'fixed' };
    this.#entries.set(domain, { config: key.config, runtime: key.runtime, record: key.record, status: { ...key.status }, info: { ...out.info }, payload: out.payload, source: copy });
  }

  forget(domain: string): void {
    this.#entries.delete(domain);
    this.#told.delete(domain);
  }

  clear(): void {
    this.#entries.clear();
    this.#told.clear();
  }

  /**
   * Why the host will not read this process for the plugin: undefined when it may, '' when it
   * is simply not that process any more (exited, or the pid reused: the driver is asked next
   * time, nothing to report). As the process-info effect: its executable must be a granted one;
   * an executable that cannot be read (a kernel thread, another user's process) is refused. The
   * start time is checked before and after, so the executable read is the measured process's.
   */
  #refusal(pid: number, startTicks: bigint): string | undefined {
    if (!Number.isInteger(pid) || pid <= 1) return `pid ${pid} is not a process the driver may name`;
    if (!sameProcess(pid, startTicks)) return '';
    const exe = executableOf(pid);
    if (!sameProcess(pid, startTicks)) return '';
    if (exe === undefined) return `the executable of pid ${pid} cannot be read`;
    return this.executables.includes(exe) ? undefined : `pid ${pid} runs ${exe}, which is not a granted executable`;
  }
}
