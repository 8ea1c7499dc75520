// One error class with stable codes. Codes are API: never renamed, only added.
// The table in packages/core/README.md documents each.
export const ErrorCodes = [
  'NO_DOMAIN',
  'INVALID_CONFIG',
  'INVALID_ARGUMENT',
  'OPERATION_INVALID',
  'NO_SUPPORT',
  'GRANT_DENIED',
  'ACCESS_DENIED',
  'PLUGIN_REFUSED',
  'NO_DRIVER',
  'DRIVER_FAILED',
  'TIMEOUT',
  'CANCELLED',
  'IO_ERROR',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'INTERNAL',
  'PROTOCOL_ERROR',
] as const;
export type ErrorCode = (typeof ErrorCodes)[number];

/** One field a validation rejected: its JSON pointer and why. */
export interface FieldError {
  pointer: string;
  message: string;
}

export class VirtkitError extends Error {
  readonly code: ErrorCode;
  /** For INVALID_CONFIG: every offending field. */
  readonly fields?: FieldError[];

  constructor(code: ErrorCode, message: string, opts: { fields?: FieldError[]; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'VirtkitError';
    this.code = code;
    if (opts.fields) this.fields = opts.fields;
  }

  toJSON() {
    return { code: this.code, message: this.message, ...(this.fields ? { fields: this.fields } : {}) };
  }

  static is(e: unknown, code?: ErrorCode): e is VirtkitError {
    return e instanceof VirtkitError && (code === undefined || e.code === code);
  }
}

/** WIT error-code (kebab-case) to VirtkitError code. */
export function fromWitCode(code: string): ErrorCode {
  const c = code.toUpperCase().replace(/-/g, '_');
  return (ErrorCodes as readonly string[]).includes(c) ? (c as ErrorCode) : 'DRIVER_FAILED';
}

/** VirtkitError code to WIT error-code, for errors the host hands back to a driver. */
export function toWitCode(code: ErrorCode): string {
  const c = code.toLowerCase().replace(/_/g, '-');
  const wit = ['no-domain', 'invalid-config', 'operation-invalid', 'no-support', 'grant-denied', 'driver-failed', 'timeout', 'cancelled', 'io-error', 'not-found', 'already-exists', 'internal'];
  return wit.includes(c) ? c : 'internal';
}
