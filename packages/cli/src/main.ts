// The virtkit command: global options, then one command or several separated by ';'
// (as virsh takes them), all run on one connection. bin/virtkit.js calls main().
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { VirtkitError } from '@virtkit/core';
import { buildVerbs, integer, verbSummary } from './commands.js';
import { EXIT, reportError, type ErrorContext } from './report.js';
import { processIo, Session, type Globals, type Io } from './session.js';
import { splitCommands, UsageError } from './split.js';

/** The package directory: plugins installed next to the CLI are found from here. */
export const CLI_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
const VERSION: string = JSON.parse(readFileSync(join(CLI_DIR, 'package.json'), 'utf8')).version;
export const DEFAULT_URI = 'test:///default';

export const USAGE = `Usage: virtkit [-c URI] [--json] [-q] [--timeout MS] <verb> [args]
       virtkit [-c URI] [--json] [-q] [--timeout MS] '<verb> [args]; <verb> [args]; ...'
Run 'virtkit help' for the verbs and options, 'virtkit help VERB' for one verb.`;

/** After a Ctrl-C, how long a command may take to wind down before virtkit stops waiting. */
const GRACE_MS = 1000;

const EXIT_HELP = `
Exit codes:
  0    every command succeeded
  1    an operation failed (the error says which code: NO_DOMAIN, INVALID_CONFIG, ...)
  2    usage error: unknown verb or option, missing or bad argument
  130  cancelled by Ctrl-C
With several commands, virtkit stops at the first that fails and exits with its code.
exec exits with the code of the command it ran (128 + N when signal N ended it).`;

const EXAMPLES = `
Examples:
  virtkit list --all
  virtkit -c test:///default 'define web1.json; start web1; dominfo web1'
  virtkit --json 'start test; dominfo test'
  virtkit -c test:///$PWD/node.json list --all`;

/** What the top-level help shows after the options. */
const afterHelp = (verbsHelp: () => string) => `\nVerbs:\n${verbsHelp()}\n${EXIT_HELP}\n${EXAMPLES}`;

function topProgram(io: Io, verbsHelp: () => string): Command {
  return new Command('virtkit')
    .description("Manage domains (virtual machines, containers) on a node through virtkit's driver plugins.")
    .usage("[options] <verb> [args]\n       virtkit [options] '<verb> [args]; <verb> [args]; ...'")
    .addOption(new Option('-c, --connect <uri>', `connection URI (default: $VIRTKIT_DEFAULT_URI, else ${DEFAULT_URI})`))
    .option('--json', 'print JSON: one document per command, one per line')
    .option('-q, --quiet', 'no informational messages and no progress')
    .option('--timeout <ms>', 'cancel a command that runs longer than this (events --follow just stops)', integer('--timeout', 1))
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show this help')
    .argument('[command...]', "a verb and its arguments, or several commands in one string separated by ';'")
    .passThroughOptions()
    .exitOverride()
    .configureOutput({ writeOut: (t) => io.out(t), writeErr: (t) => io.err(t) })
    .showHelpAfterError(USAGE)
    .addHelpText('after', () => afterHelp(verbsHelp))
    .action(() => {});
}

/** Resolves or rejects with `p`; after `signal` aborts, waits at most GRACE_MS for it. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      timer = setTimeout(() => reject(new VirtkitError('CANCELLED', 'the command did not stop in time after it was cancelled')), GRACE_MS);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    });
  });
}

const flush = (s: NodeJS.WriteStream) => new Promise<void>((r) => (s.writableEnded || s.destroyed ? r() : s.write('', () => r())));

/** Runs virtkit with these arguments (without node and the script); returns the exit code. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  // `virtkit list | head -1`: a closed pipe is not an error.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  const code = await run(argv, io);
  process.exitCode = code;
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
  return code;
}

async function run(argv: string[], io: Io): Promise<number> {
  const envUri = process.env.VIRTKIT_DEFAULT_URI;
  // Plugins installed next to the CLI, and those the host config names; never the current
  // directory, which may belong to someone else.
  const pluginSearch = [CLI_DIR];
  const helpTree = () => verbSummary(buildVerbs(new Session({ connect: DEFAULT_URI, uriGiven: false, json: false, quiet: false }, io, pluginSearch), { signal: new AbortController().signal, timedOut: () => false }, { verb: 'help' }, () => '', USAGE));
  const top = topProgram(io, helpTree);
  try {
    top.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    throw e;
  }
  const o = top.opts<{ connect?: string; json?: boolean; quiet?: boolean; timeout?: number }>();
  const globals: Globals = {
    connect: o.connect ?? (envUri || DEFAULT_URI),
    uriGiven: o.connect !== undefined || !!envUri,
    json: !!o.json,
    quiet: !!o.quiet,
    ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
  };

  let commands: string[][];
  try {
    commands = splitCommands(top.args);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`error: ${e.message}\n${USAGE}`);
    return EXIT.USAGE;
  }
  if (commands.length === 0) {
    io.err(`error: no verb given\n${USAGE}`);
    return EXIT.USAGE;
  }

  const session = new Session(globals, io, pluginSearch);
  const onSigint = () => {
    if (session.interrupted) {
      io.err('interrupted twice: quitting without waiting');
      process.exit(EXIT.INTERRUPTED);
    }
    session.cancel();
  };
  process.on('SIGINT', onSigint);
  let code: number = EXIT.OK;
  try {
    for (const words of commands) {
      const failing: ErrorContext = { verb: words[0]! };
      const ctx = session.commandContext();
      const verbs = buildVerbs(session, ctx, failing, () => top.helpInformation() + afterHelp(helpTree), USAGE);
      try {
        await raceAbort(verbs.parseAsync(words, { from: 'user' }), ctx.signal);
      } catch (e) {
        if (e instanceof CommanderError) {
          if (e.exitCode === 0) continue; // --help
          code = EXIT.USAGE;
          break;
        }
        const what = [failing.verb, failing.domain].filter(Boolean).join(' ');
        let err = e;
        if (ctx.timedOut() && (VirtkitError.is(e, 'CANCELLED') || VirtkitError.is(e, 'TIMEOUT'))) {
          err = new VirtkitError('TIMEOUT', `${what} did not finish within ${globals.timeout} ms (--timeout) and was cancelled`, { cause: e });
        } else if (session.interrupted && VirtkitError.is(e, 'CANCELLED')) {
          err = new VirtkitError('CANCELLED', `${what} was cancelled (Ctrl-C)`, { cause: e });
        }
        code = reportError(err, session, failing);
        break;
      }
      if (session.interrupted) {
        code = EXIT.INTERRUPTED;
        break;
      }
      if (failing.exitCode) {
        code = failing.exitCode;
        break;
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
    await session.close();
  }
  return code;
}
