/** @module Interface virtkit:driver/driver@0.3.0 **/
export function describe(): DriverDescription;
export type DomainStatus = import('./virtkit-driver-types.js').DomainStatus;
export type DomainInfo = import('./virtkit-driver-types.js').DomainInfo;
export type CpuTimeSource = import('./virtkit-driver-types.js').CpuTimeSource;
export type NodeInfo = import('./virtkit-driver-types.js').NodeInfo;
export type Error = import('./virtkit-driver-types.js').Error;
export type LifecycleEvent = import('./virtkit-driver-types.js').LifecycleEvent;
export type Effect = import('./virtkit-driver-effects.js').Effect;
export type EffectOutcome = import('./virtkit-driver-effects.js').EffectOutcome;
export type ExitStatus = import('./virtkit-driver-effects.js').ExitStatus;
/**
 * Every operation the host can ask for. A driver lists those it implements in
 * `describe`; the host answers NO_SUPPORT for the others without calling the driver.
 * # Variants
 * 
 * ## `"open"`
 * 
 * Open a node for a URI: report the domains the node already has.
 * ## `"define"`
 * 
 * ## `"undefine"`
 * 
 * ## `"start"`
 * 
 * ## `"shutdown"`
 * 
 * ## `"destroy"`
 * 
 * ## `"reboot"`
 * 
 * ## `"reset"`
 * 
 * ## `"suspend"`
 * 
 * ## `"resume"`
 * 
 * ## `"info"`
 * 
 * ## `"node-info"`
 * 
 * ## `"handle-event"`
 * 
 * An unsolicited message on a watched channel, or a watched process exit.
 * ## `"reattach"`
 * 
 * The host (re)started while the domain was active: re-open its channels, or report
 * it gone (shut off, reason crashed) if its hypervisor process died meanwhile.
 * ## `"console"`
 * 
 * Name the endpoint of the domain's console (payload {"socket": path}); the host
 * proxies the byte stream, it never passes through the driver.
 * ## `"exec"`
 * 
 * Since 0.2.0. Run a command inside the running domain (containers: lxc-attach) and
 * wait for it. `args`: {"argv": [string, ...] (non-empty), "env"?: {NAME: value},
 * "cwd"?: string, "stdin"?: base64 string, "timeoutMs"?: number}. Outcome payload:
 * {"exitCode": number | null, "signal": string | null (e.g. "SIGKILL"), "stdout": base64,
 * "stderr": base64, "truncated": bool (output beyond the driver's bound was dropped)}.
 * The host validates the args and runs exec outside the domain's lifecycle job queue:
 * a long command does not hold up a shutdown.
 */
export type OperationKind = 'open' | 'define' | 'undefine' | 'start' | 'shutdown' | 'destroy' | 'reboot' | 'reset' | 'suspend' | 'resume' | 'info' | 'node-info' | 'handle-event' | 'reattach' | 'console' | 'exec';
export interface DriverDescription {
  name: string,
  version: string,
  uriSchemes: Array<string>,
  operations: Array<OperationKind>,
  /**
   * Named optional features (suspend, snapshots, live-migration, hotplug, ...).
   */
  features: Array<string>,
  /**
   * JSON Schema of the driver's own section of a domain config, if it has one.
   */
  configSchema?: string,
}
export interface NodeContext {
  uri: string,
  /**
   * Durable per-plugin dir and volatile runtime dir, as granted by the host.
   */
  stateDir: string,
  runtimeDir: string,
  /**
   * For `open`: the node document the user named in the URI (test:///PATH), if any.
   */
  nodeDocument?: string,
}
/**
 * What started a `handle-event` operation.
 */
export type EventTrigger = EventTriggerChannelMessage | EventTriggerChannelClosed | EventTriggerProcessExited;
/**
 * Unsolicited messages wait on this channel.
 */
export interface EventTriggerChannelMessage {
  tag: 'channel-message',
  val: number,
}
/**
 * The channel closed (the peer went away), with the reason.
 */
export interface EventTriggerChannelClosed {
  tag: 'channel-closed',
  val: [number, string],
}
/**
 * A watched process this host started exited.
 */
export interface EventTriggerProcessExited {
  tag: 'process-exited',
  val: [number, ExitStatus],
}
export interface OperationRequest {
  kind: OperationKind,
  /**
   * For `handle-event`: why it runs.
   */
  trigger?: EventTrigger,
  node: NodeContext,
  /**
   * The domain's name, for domain operations.
   */
  domain?: string,
  /**
   * The domain config as a JSON document (validated by the core).
   */
  config?: string,
  /**
   * The runtime record the driver returned last time, as it returned it.
   */
  runtime?: string,
  status?: DomainStatus,
  /**
   * Operation arguments as JSON (e.g. {"timeoutMs": 30000} for shutdown).
   */
  args: string,
}
/**
 * A domain a node reports on `open`.
 */
export interface DomainRecord {
  config: string,
  status: DomainStatus,
  runtime?: string,
}
export interface Outcome {
  status?: DomainStatus,
  /**
   * A new runtime record to persist; `clear-runtime` drops it (the domain stopped).
   */
  runtime?: string,
  clearRuntime: boolean,
  events: Array<LifecycleEvent>,
  info?: DomainInfo,
  node?: NodeInfo,
  domains: Array<DomainRecord>,
  /**
   * Anything else as JSON.
   */
  payload?: string,
  /**
   * Since 0.3.0, for `info`: the info (and payload) is a function of the request's config,
   * status and runtime record and of the CPU time read from this source. The host may then
   * answer a later `info` whose request carries the same config, status and runtime record
   * from this outcome without running the driver, reading the CPU time itself (as libvirt
   * answers virDomainGetInfo from its memory and /proc). Absent: every `info` runs the
   * driver. In component-model terms a record with a new field is a new type: a host that
   * lifted every component with its own world's types could not load a component built
   * against 0.2.0. virtkit hosts make the glue from each component's own types, so such a
   * component (whose outcome lacks this field) loads unchanged and is asked for every info.
   */
  infoReuse?: CpuTimeSource,
}
export type Step = StepEffect | StepDone | StepFailed;
export interface StepEffect {
  tag: 'effect',
  val: Effect,
}
export interface StepDone {
  tag: 'done',
  val: Outcome,
}
export interface StepFailed {
  tag: 'failed',
  val: Error,
}

export class Operation {
  constructor(request: OperationRequest)
  next(previous: EffectOutcome | undefined): Step;
}
