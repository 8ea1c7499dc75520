declare module 'virtkit:driver/types@0.3.0' {
  /**
   * What a domain is doing, as libvirt's virDomainState.
   * # Variants
   * 
   * ## `"no-state"`
   * 
   * ## `"running"`
   * 
   * ## `"blocked"`
   * 
   * ## `"paused"`
   * 
   * ## `"shutting-down"`
   * 
   * ## `"shut-off"`
   * 
   * ## `"crashed"`
   * 
   * ## `"pm-suspended"`
   */
  export type DomainState = 'no-state' | 'running' | 'blocked' | 'paused' | 'shutting-down' | 'shut-off' | 'crashed' | 'pm-suspended';
  /**
   * Why a domain is in its state. One list for all states keeps the contract small;
   * a driver picks the reason that fits the state it reports.
   * # Variants
   * 
   * ## `"unknown"`
   * 
   * ## `"booted"`
   * 
   * ## `"unpaused"`
   * 
   * ## `"user"`
   * 
   * ## `"shutdown"`
   * 
   * ## `"destroyed"`
   * 
   * ## `"crashed"`
   * 
   * ## `"failed"`
   * 
   * ## `"migrated"`
   * 
   * ## `"saved"`
   * 
   * ## `"from-snapshot"`
   * 
   * ## `"panicked"`
   * 
   * ## `"watchdog"`
   * 
   * ## `"io-error"`
   * 
   * ## `"starting-up"`
   */
  export type StateReason = 'unknown' | 'booted' | 'unpaused' | 'user' | 'shutdown' | 'destroyed' | 'crashed' | 'failed' | 'migrated' | 'saved' | 'from-snapshot' | 'panicked' | 'watchdog' | 'io-error' | 'starting-up';
  export interface DomainStatus {
    state: DomainState,
    reason: StateReason,
  }
  /**
   * Runtime facts about a domain; memory in KiB as libvirt does.
   */
  export interface DomainInfo {
    state: DomainState,
    reason: StateReason,
    maxMemoryKib: bigint,
    memoryKib: bigint,
    vcpus: number,
    cpuTimeNs: bigint,
  }
  /**
   * Since 0.3.0. Where the host reads a domain's CPU time when it answers `info` itself (see
   * `info-reuse` in the driver interface), as libvirt's QEMU driver reads /proc for it.
   */
  export type CpuTimeSource = CpuTimeSourceFixed | CpuTimeSourceProcess | CpuTimeSourceMonotonic;
  /**
   * The value in the info does not move (a domain that does not run).
   */
  export interface CpuTimeSourceFixed {
    tag: 'fixed',
  }
  /**
   * The CPU time (user + system, all threads) of this process: its pid and its start time
   * (clock ticks since boot, `process-info.start-time-ticks` of the process the driver
   * measured), read from /proc/PID/stat as the `process-info` effect reads it. The host checks
   * the pid as that effect does (a process running one of the plugin's granted executables)
   * and asks the driver again once the pid names another process (another start time), a
   * zombie or none.
   */
  export interface CpuTimeSourceProcess {
    tag: 'process',
    val: [number, bigint],
  }
  /**
   * Grows by one nanosecond per nanosecond of the host's monotonic clock, from the info's
   * value at this reading of it (`clock-reading.monotonic-ns`): a simulated hypervisor.
   */
  export interface CpuTimeSourceMonotonic {
    tag: 'monotonic',
    val: bigint,
  }
  export interface NumaCell {
    id: number,
    cpus: Uint32Array,
    memoryKib: bigint,
  }
  export interface NodeInfo {
    cpuModel: string,
    cpus: number,
    mhz: number,
    sockets: number,
    coresPerSocket: number,
    threadsPerCore: number,
    memoryKib: bigint,
    numa: Array<NumaCell>,
    /**
     * Hypervisor name and version as the driver sees it (e.g. "QEMU", "8.2.0").
     */
    hypervisor: string,
    hypervisorVersion: string,
    /**
     * Extra facts as named strings (accelerator, machine types, ...).
     */
    facts: Array<[string, string]>,
  }
  /**
   * Stable error codes; the core maps each to its VirtkitError code of the same name.
   * # Variants
   * 
   * ## `"no-domain"`
   * 
   * ## `"invalid-config"`
   * 
   * ## `"operation-invalid"`
   * 
   * ## `"no-support"`
   * 
   * ## `"grant-denied"`
   * 
   * ## `"driver-failed"`
   * 
   * ## `"timeout"`
   * 
   * ## `"cancelled"`
   * 
   * ## `"io-error"`
   * 
   * ## `"not-found"`
   * 
   * ## `"already-exists"`
   * 
   * ## `"internal"`
   */
  export type ErrorCode = 'no-domain' | 'invalid-config' | 'operation-invalid' | 'no-support' | 'grant-denied' | 'driver-failed' | 'timeout' | 'cancelled' | 'io-error' | 'not-found' | 'already-exists' | 'internal';
  export interface Error {
    code: ErrorCode,
    message: string,
  }
  /**
   * # Variants
   * 
   * ## `"defined"`
   * 
   * ## `"undefined"`
   * 
   * ## `"started"`
   * 
   * ## `"suspended"`
   * 
   * ## `"resumed"`
   * 
   * ## `"stopped"`
   * 
   * ## `"shutdown"`
   * 
   * ## `"rebooted"`
   * 
   * ## `"crashed"`
   * 
   * ## `"pm-suspended"`
   */
  export type EventKind = 'defined' | 'undefined' | 'started' | 'suspended' | 'resumed' | 'stopped' | 'shutdown' | 'rebooted' | 'crashed' | 'pm-suspended';
  /**
   * A lifecycle event the driver reports; the core numbers and persists it.
   */
  export interface LifecycleEvent {
    domain: string,
    kind: EventKind,
    reason: StateReason,
  }
}
