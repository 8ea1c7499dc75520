/// <reference path="./virtkit-driver-types.d.ts" />
declare module 'virtkit:driver/effects@0.3.0' {
  export type Error = import('virtkit:driver/types@0.3.0').Error;
  export interface EnvVar {
    name: string,
    value: string,
  }
  /**
   * Run to completion: the host waits for the exit and hands back bounded output.
   */
  export interface RunOptions {
    /**
     * Bytes written to the child's stdin, then closed.
     */
    stdin?: Uint8Array,
    /**
     * At most this many bytes of stdout and of stderr are kept (the rest is dropped and
     * `truncated` is set).
     */
    maxOutputBytes: number,
    /**
     * The child is killed (SIGKILL) after this long and the effect fails with `timeout`.
     */
    timeoutMs: number,
  }
  /**
   * Start and return at once. `detached` puts the process in its own session so it
   * outlives the host (a VM must survive its manager); stdout/stderr go to `log-file`
   * (appended, under a granted path) or nowhere. With `watch-domain`, the process's exit
   * (while this host runs) starts a `handle-event` operation for that domain.
   */
  export interface BackgroundOptions {
    detached: boolean,
    logFile?: string,
    watchDomain?: string,
  }
  export type SpawnMode = SpawnModeRun | SpawnModeBackground;
  export interface SpawnModeRun {
    tag: 'run',
    val: RunOptions,
  }
  export interface SpawnModeBackground {
    tag: 'background',
    val: BackgroundOptions,
  }
  export interface SpawnRequest {
    /**
     * Absolute path; it must be one of the granted executables.
     */
    executable: string,
    /**
     * argv[1..]: never a shell string.
     */
    args: Array<string>,
    /**
     * The whole environment of the child: nothing is inherited from the host.
     */
    env: Array<EnvVar>,
    cwd?: string,
    mode: SpawnMode,
  }
  /**
   * # Variants
   * 
   * ## `"sigterm"`
   * 
   * ## `"sigkill"`
   * 
   * ## `"sigint"`
   * 
   * ## `"sighup"`
   * 
   * ## `"sigstop"`
   * 
   * ## `"sigcont"`
   * 
   * ## `"sigusr1"`
   * 
   * ## `"sigusr2"`
   */
  export type Signal = 'sigterm' | 'sigkill' | 'sigint' | 'sighup' | 'sigstop' | 'sigcont' | 'sigusr1' | 'sigusr2';
  export interface SignalRequest {
    pid: number,
    signal: Signal,
  }
  export interface WaitRequest {
    pid: number,
    timeoutMs: number,
  }
  /**
   * What the kernel says of a process this plugin may signal (its own, or one running a
   * granted executable): for CPU time and memory in `info` without a /proc grant.
   */
  export interface ProcessInfo {
    /**
     * One letter as in /proc/PID/stat (R, S, D, T, Z, ...).
     */
    state: string,
    cpuTimeNs: bigint,
    rssBytes: bigint,
    /**
     * When it started, in clock ticks since boot (ties a pid to one process across pid reuse).
     */
    startTimeTicks: bigint,
    /**
     * Its command line (tells which domain a hypervisor process belongs to).
     */
    argv: Array<string>,
  }
  /**
   * How bytes on a channel are cut into messages.
   * # Variants
   * 
   * ## `"json-lines"`
   * 
   * One JSON value a line (QMP, most JSON protocols).
   */
  export type Framing = 'json-lines';
  /**
   * A message matches when, for any entry, its top-level `field` exists and (if given)
   * equals `equals` once rendered as JSON text. An empty list matches anything.
   */
  export interface FieldMatch {
    field: string,
    equals?: string,
  }
  /**
   * Unsolicited input on a channel: messages matching `events` that no operation is
   * waiting for, and the channel closing, start a `handle-event` operation for `domain`
   * (after the domain's operations in flight). The messages stay queued on the channel
   * for that operation (or an earlier one) to receive.
   */
  export interface ChannelWatch {
    domain: string,
    events: Array<FieldMatch>,
  }
  export interface ChannelOpenRequest {
    /**
     * A unix socket under a granted socket dir.
     */
    path: string,
    framing: Framing,
    timeoutMs: number,
    watch?: ChannelWatch,
  }
  export interface ReceiveRequest {
    channel: number,
    filter: Array<FieldMatch>,
    timeoutMs: number,
  }
  export interface SendRequest {
    channel: number,
    message: string,
  }
  export interface FileWriteRequest {
    path: string,
    data: Uint8Array,
    mode: number,
    /**
     * Write to a temp file, fsync, rename over the target, fsync the directory.
     */
    atomic: boolean,
  }
  export interface FileReadRequest {
    path: string,
    maxBytes: number,
  }
  export interface MakeDirRequest {
    path: string,
    mode: number,
    recursive: boolean,
  }
  export interface RemoveRequest {
    path: string,
    recursive: boolean,
  }
  export interface ProgressReport {
    /**
     * 0..100
     */
    percent: number,
    message: string,
  }
  export type Effect = EffectSpawn | EffectSignal | EffectWaitProcess | EffectProcessInfo | EffectChannelOpen | EffectChannelSend | EffectChannelReceive | EffectChannelClose | EffectFileRead | EffectFileWrite | EffectFileStat | EffectFileList | EffectFileRemove | EffectMakeDir | EffectSleep | EffectClock | EffectProgress;
  export interface EffectSpawn {
    tag: 'spawn',
    val: SpawnRequest,
  }
  export interface EffectSignal {
    tag: 'signal',
    val: SignalRequest,
  }
  export interface EffectWaitProcess {
    tag: 'wait-process',
    val: WaitRequest,
  }
  /**
   * Facts about a process; fails NOT_FOUND once it is gone.
   */
  export interface EffectProcessInfo {
    tag: 'process-info',
    val: number,
  }
  export interface EffectChannelOpen {
    tag: 'channel-open',
    val: ChannelOpenRequest,
  }
  export interface EffectChannelSend {
    tag: 'channel-send',
    val: SendRequest,
  }
  export interface EffectChannelReceive {
    tag: 'channel-receive',
    val: ReceiveRequest,
  }
  export interface EffectChannelClose {
    tag: 'channel-close',
    val: number,
  }
  export interface EffectFileRead {
    tag: 'file-read',
    val: FileReadRequest,
  }
  export interface EffectFileWrite {
    tag: 'file-write',
    val: FileWriteRequest,
  }
  export interface EffectFileStat {
    tag: 'file-stat',
    val: string,
  }
  export interface EffectFileList {
    tag: 'file-list',
    val: string,
  }
  export interface EffectFileRemove {
    tag: 'file-remove',
    val: RemoveRequest,
  }
  export interface EffectMakeDir {
    tag: 'make-dir',
    val: MakeDirRequest,
  }
  export interface EffectSleep {
    tag: 'sleep',
    val: number,
  }
  export interface EffectClock {
    tag: 'clock',
  }
  export interface EffectProgress {
    tag: 'progress',
    val: ProgressReport,
  }
  export interface ExitStatus {
    /**
     * Exit code, when the process exited normally.
     */
    code?: number,
    /**
     * Signal name (e.g. "SIGKILL"), when a signal ended it.
     */
    signal?: string,
    stdout: Uint8Array,
    stderr: Uint8Array,
    truncated: boolean,
  }
  /**
   * # Variants
   * 
   * ## `"file"`
   * 
   * ## `"directory"`
   * 
   * ## `"symlink"`
   * 
   * ## `"socket"`
   * 
   * ## `"other"`
   */
  export type FileKind = 'file' | 'directory' | 'symlink' | 'socket' | 'other';
  export interface FileStat {
    kind: FileKind,
    size: bigint,
    mode: number,
    mtimeMs: bigint,
  }
  export interface DirEntry {
    name: string,
    kind: FileKind,
  }
  export interface ClockReading {
    /**
     * Milliseconds since the Unix epoch.
     */
    wallMs: bigint,
    /**
     * A monotonic clock in nanoseconds, for durations.
     */
    monotonicNs: bigint,
  }
  /**
   * What an effect produced, one case per effect family.
   */
  export type EffectResult = EffectResultNone | EffectResultSpawned | EffectResultExited | EffectResultChannel | EffectResultMessage | EffectResultData | EffectResultProcess | EffectResultStat | EffectResultEntries | EffectResultClock;
  /**
   * Effects with nothing to report: signal, send, close, write, remove, make-dir,
   * sleep, progress.
   */
  export interface EffectResultNone {
    tag: 'none',
  }
  /**
   * spawn in background mode.
   */
  export interface EffectResultSpawned {
    tag: 'spawned',
    val: number,
  }
  /**
   * spawn in run mode, and wait-process (with empty output).
   */
  export interface EffectResultExited {
    tag: 'exited',
    val: ExitStatus,
  }
  /**
   * channel-open: the channel handle.
   */
  export interface EffectResultChannel {
    tag: 'channel',
    val: number,
  }
  /**
   * channel-receive: the message text.
   */
  export interface EffectResultMessage {
    tag: 'message',
    val: string,
  }
  /**
   * file-read.
   */
  export interface EffectResultData {
    tag: 'data',
    val: Uint8Array,
  }
  /**
   * process-info.
   */
  export interface EffectResultProcess {
    tag: 'process',
    val: ProcessInfo,
  }
  /**
   * file-stat: none when the path does not exist.
   */
  export interface EffectResultStat {
    tag: 'stat',
    val: FileStat | undefined,
  }
  /**
   * file-list.
   */
  export interface EffectResultEntries {
    tag: 'entries',
    val: Array<DirEntry>,
  }
  export interface EffectResultClock {
    tag: 'clock',
    val: ClockReading,
  }
  export type EffectOutcome = Result<EffectResult, Error>;
  export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };
}
