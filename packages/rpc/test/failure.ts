// The VirtkitError a call fails with (shared by the rpc and daemon tests, which all meet the
// errors as @virtkit/core's built VirtkitError, the class the client throws).
import { VirtkitError } from '@virtkit/core';

export async function failure(p: Promise<unknown>): Promise<VirtkitError> {
  try {
    await p;
  } catch (e) {
    if (VirtkitError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a failure');
}
