// Run a driver's operation in-process, without Wasm or a host: every effect goes to a
// handler the test supplies. For unit tests of driver logic (argv building, state
// decisions, parsing); the real host and hypervisor are for integration tests.
import type { DriverDescription, EffectOutcome, OperationRequest, Outcome, Step } from 'virtkit:driver/driver@0.3.0';

export interface DriverModule {
  describe(): DriverDescription;
  Operation: new (request: OperationRequest) => { next(previous: EffectOutcome | undefined): Step };
}

/** Returns an effect's result, or throws {code, message} to fail it. */
export type EffectHandler = (effect: Extract<Step, { tag: 'effect' }>['val']) => unknown;

export class OperationFailed extends Error {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

export function runOperation(driver: DriverModule, request: Partial<OperationRequest> & Pick<OperationRequest, 'kind'>, handle: EffectHandler, maxSteps = 10_000): Outcome {
  const op = new driver.Operation({
    node: { uri: 'test:///unit', stateDir: '/state', runtimeDir: '/run' },
    args: '{}',
    ...request,
  } as OperationRequest);
  let prev: EffectOutcome | undefined;
  for (let i = 0; i < maxSteps; i++) {
    const step = op.next(prev);
    if (step.tag === 'done') return step.val;
    if (step.tag === 'failed') throw new OperationFailed(step.val.code, step.val.message);
    try {
      prev = { tag: 'ok', val: handle(step.val) as never };
    } catch (e) {
      const err = e as { code?: string; message?: string };
      prev = { tag: 'err', val: { code: (err.code ?? 'io-error') as never, message: err.message ?? String(e) } };
    }
  }
  throw new Error(`operation ${request.kind} did not finish in ${maxSteps} steps`);
}
