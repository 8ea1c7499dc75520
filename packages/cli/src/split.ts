// Command strings as virsh takes them: `virtkit 'define d.json; start d; dominfo d'`.
// shell-quote does the quoting rules; ';' operators separate commands.
import { parse } from 'shell-quote';

/** A mistake in how virtkit was called: exit code 2 with the usage. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const SEPARATORS = new Set([';', ';;']);

type Token = string | { op: string; pattern?: string } | { comment: string };

/** Tokens of a command string; `$VAR` stays as written (virtkit expands nothing). */
function tokens(line: string): Token[] {
  return parse(line, (key: string) => `$${key}`) as Token[];
}

/**
 * Splits the command-line operands into commands, each a list of words.
 * - one operand: a command string, split by shell rules, ';' between commands;
 * - several operands, none with ';': one command, words taken as given;
 * - several operands, some with ';': those are split as command strings, the others kept
 *   as single words, so `virtkit define d.json \; start d` works too; operands after `--`
 *   are always single words.
 */
export function splitCommands(operands: string[]): string[][] {
  if (operands.length === 0) return [];
  let all: Token[];
  // Operands after '--' are a command's own words (`exec vm -- sh -c 'a; b'`): never split.
  const dashes = operands.indexOf('--');
  const own = (i: number) => dashes >= 0 && i > dashes;
  if (operands.length === 1) all = tokens(operands[0]!);
  else if (!operands.some((a, i) => a.includes(';') && !own(i))) return [operands];
  else all = operands.flatMap((a, i) => (a.includes(';') && !own(i) ? tokens(a) : [a]));

  const commands: string[][] = [];
  let current: string[] = [];
  const flush = () => {
    if (current.length) commands.push(current);
    current = [];
  };
  for (const t of all) {
    if (typeof t === 'string') current.push(t);
    else if ('comment' in t) break; // a '#' comment runs to the end of the string
    else if (t.op === 'glob') current.push(t.pattern!); // no globbing: the word as written
    else if (SEPARATORS.has(t.op)) flush();
    else throw new UsageError(`the command string has the shell operator '${t.op}'; only ';' (between commands) is understood, quote it to use it as text`);
  }
  flush();
  return commands;
}
