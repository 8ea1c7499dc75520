// Exit codes, and errors as the user sees them: `error: CODE: message`, every field of an
// INVALID_CONFIG on its own line, and a hint for the errors a user can act on.
import { VirtkitError, type FieldError } from '@virtkit/core';
import type { Session } from './session.js';

export const EXIT = {
  OK: 0,
  /** An operation failed (a VirtkitError). */
  FAILED: 1,
  /** virtkit was called wrongly: unknown verb or option, missing argument. */
  USAGE: 2,
  /** Ctrl-C cancelled the running command. */
  INTERRUPTED: 130,
} as const;

/** What the failing command was about, for hints. */
export interface ErrorContext {
  verb: string;
  domain?: string;
  /**
   * A command that succeeded but wants virtkit to exit non-zero (exec passes the command's
   * exit code through): the invocation stops there and exits with it.
   */
  exitCode?: number;
}

const fieldLine = (f: FieldError) => `${f.pointer || '(root)'}: ${f.message}`;

/** Core's INVALID_CONFIG message ends with all fields joined by '; '; they get their own lines here. */
function withoutFieldSummary(message: string, fields: FieldError[]): string {
  const summary = `: ${fields.map(fieldLine).join('; ')}`;
  return message.endsWith(summary) ? message.slice(0, -summary.length) : message;
}

function hint(e: VirtkitError, s: Session, ctx: ErrorContext): string | undefined {
  const c = s.globals.uriGiven ? `-c ${s.globals.connect} ` : '';
  const conn = s.openConnection;
  switch (e.code) {
    case 'NO_DOMAIN': {
      let h = `virtkit ${c}list --all shows defined domains`;
      if (conn?.supports('per-connection-state')) {
        h += `; ${conn.uri.uri} keeps its state only for one invocation, so define and use a domain in one command string: virtkit ${c}'define FILE; start NAME; dominfo NAME'`;
      }
      return h;
    }
    case 'NO_DRIVER':
      return `virtkit plugins lists the installed driver plugins and their URI schemes; install the plugin package for this scheme next to virtkit or in ${process.cwd()}/node_modules`;
    case 'NO_SUPPORT':
      return `virtkit ${c}capabilities lists the operations and features this driver supports`;
    case 'INVALID_CONFIG':
      return e.fields?.length
        ? 'each line above is a JSON pointer into the config and what is wrong there; the schema is schema/domain.schema.json in @virtkit/core'
        : 'fix the JSON text at the position above';
    case 'OPERATION_INVALID':
      return ctx.domain ? `virtkit ${c}dominfo ${ctx.domain} shows the domain's current state` : `virtkit ${c}list --all shows the domains and their states`;
    default:
      return undefined;
  }
}

/** Prints a failed command's error; returns the exit code. */
export function reportError(e: unknown, s: Session, ctx: ErrorContext): number {
  const { io } = s;
  if (VirtkitError.is(e)) {
    const fields = e.fields ?? [];
    io.err(`error: ${e.code}: ${fields.length ? withoutFieldSummary(e.message, fields) : e.message}`);
    for (const f of fields) io.err(`  ${fieldLine(f)}`);
    const h = hint(e, s, ctx);
    if (h) io.err(`hint: ${h}`);
    return e.code === 'CANCELLED' && s.interrupted ? EXIT.INTERRUPTED : EXIT.FAILED;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  io.err(`error: ${err.message}`);
  if (process.env.VIRTKIT_DEBUG) io.err(err.stack ?? '');
  return s.interrupted ? EXIT.INTERRUPTED : EXIT.FAILED;
}
