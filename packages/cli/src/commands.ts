// The verbs. Each is a commander sub-command, so each has --help and argument checks.
// A fresh tree is built for every command of an invocation (commander keeps parsed
// option values in the tree).
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { VirtkitError, type Connection, type DomainEvent, type DomainStatus } from '@virtkit/core';
import { cpuRanges, eventLine, keyValues, stateText, table, toJson } from './format.js';
import { parseJsonText } from './json-text.js';
import { addPkiVerbs } from './pki.js';
import { EXIT, type ErrorContext } from './report.js';
import type { CommandContext, Session } from './session.js';

/** Option value parser: an integer >= min. */
export function integer(what: string, min = 0) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
      throw new InvalidArgumentError(`${what} must be an integer >= ${min}, not ${JSON.stringify(v)}`);
    }
    return Number(v);
  };
}

/** Option value parser for a repeatable --env K=V: collects into one object. */
function envPair(v: string, all: Record<string, string> | undefined): Record<string, string> {
  const eq = v.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`--env takes NAME=VALUE, not ${JSON.stringify(v)}`);
  return { ...all, [v.slice(0, eq)]: v.slice(eq + 1) };
}

/** virtkit's exit code for a command run by exec: its own, or 128 + the signal number (as a shell does). */
export function execExitCode(r: { exitCode: number | null; signal: string | null }): number {
  if (r.exitCode !== null) return r.exitCode;
  const n = r.signal ? (osConstants.signals as Record<string, number | undefined>)[r.signal] : undefined;
  return n !== undefined ? 128 + n : EXIT.FAILED;
}

/** Lifecycle verbs: [verb, description, what the success message says]. */
const LIFECYCLE = [
  ['start', 'Start (boot) a defined domain', 'started'],
  ['shutdown', "Ask the guest to shut down (ACPI power button) and wait until it is off", 'shut down'],
  ['destroy', 'Stop a domain at once, like pulling the power plug', 'destroyed'],
  ['reboot', 'Ask the guest to reboot', 'rebooted'],
  ['reset', 'Reset a domain at once, like pressing the reset button', 'reset'],
  ['suspend', 'Pause a running domain; it keeps its memory but gets no CPU time', 'suspended'],
  ['resume', 'Resume a paused domain', 'resumed'],
] as const;
type LifecycleVerb = (typeof LIFECYCLE)[number][0];

async function readConfigFile(s: Session, file: string, label: string): Promise<unknown> {
  let text: string;
  try {
    text = file === '-' ? await s.io.readStdin() : await readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new VirtkitError('NOT_FOUND', `cannot read ${label}: no such file`);
    if (err.code === 'EISDIR') throw new VirtkitError('IO_ERROR', `cannot read ${label}: it is a directory`);
    throw new VirtkitError('IO_ERROR', `cannot read ${label}: ${err.message}`);
  }
  return parseJsonText(text, label);
}

async function runLifecycle(conn: Connection, verb: LifecycleVerb, name: string, opts: { signal: AbortSignal; onProgress?: (p: number, m: string) => void; timeoutMs?: number }): Promise<DomainStatus> {
  const job = { signal: opts.signal, onProgress: opts.onProgress };
  switch (verb) {
    case 'shutdown':
      return conn.shutdown(name, { ...job, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });
    default:
      return conn[verb](name, job);
  }
}

/** One line per verb for the top-level help. */
export function verbSummary(verbs: Command): string {
  const rows = verbs.commands.map((c) => {
    const args = c.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`)).join(' ');
    return [`${c.name()}${args ? ` ${args}` : ''}`, c.description()] as const;
  });
  const width = Math.max(...rows.map(([t]) => t.length)) + 2;
  return rows.map(([t, d]) => `  ${t.padEnd(width)}${d}`).join('\n');
}

/**
 * Builds the verb tree for one command. `ctx` is that command's cancellation context;
 * `failing` is filled in as the command learns what it is about (for error hints).
 */
export function buildVerbs(s: Session, ctx: CommandContext, failing: ErrorContext, topHelp: () => string, usage: string): Command {
  const root = new Command('virtkit')
    .exitOverride()
    .configureOutput({ writeOut: (t) => s.io.out(t), writeErr: (t) => s.io.err(t) })
    .showHelpAfterError(true)
    .helpCommand(false)
    .allowExcessArguments(false);

  const json = (opts: { json?: boolean }) => s.globals.json || !!opts.json;
  const verb = (name: string, description: string) => {
    const cmd = root.command(name).description(description);
    if (name !== 'help') cmd.option('--json', 'print JSON (as the global --json does)');
    return cmd;
  };
  const named = (c: Command) => c.argument('<name>', 'domain name');
  const note = (v: string, domain?: string) => {
    failing.verb = v;
    if (domain !== undefined) failing.domain = domain;
  };

  verb('define', 'Define a domain from a JSON config file, or update its persistent config')
    .argument('<file>', "JSON domain config; '-' reads standard input")
    .action(async (file: string, opts: { json?: boolean }) => {
      note('define');
      const label = file === '-' ? 'standard input' : file;
      const doc = await readConfigFile(s, file, label);
      if (doc && typeof doc === 'object' && typeof (doc as { name?: unknown }).name === 'string') note('define', (doc as { name: string }).name);
      const conn = await s.connection();
      let summary;
      try {
        summary = await conn.define(doc);
      } catch (e) {
        if (VirtkitError.is(e, 'INVALID_CONFIG')) throw new VirtkitError('INVALID_CONFIG', `${label}: ${e.message}`, { fields: e.fields, cause: e });
        throw e;
      }
      if (json(opts)) s.printJson(summary);
      else s.info(`Domain ${summary.name} defined from ${label}`);
    });

  named(verb('undefine', 'Remove the definition of an inactive domain')).action(async (name: string, opts: { json?: boolean }) => {
    note('undefine', name);
    const conn = await s.connection();
    await conn.undefine(name);
    if (json(opts)) s.printJson({ name, operation: 'undefine' });
    else s.info(`Domain ${name} undefined`);
  });

  for (const [v, description, done] of LIFECYCLE) {
    const cmd = named(verb(v, description));
    if (v === 'shutdown') cmd.option('--timeout <ms>', 'how long to wait for the guest to power off (default 60000)', integer('--timeout', 1));
    cmd.action(async (name: string, opts: { json?: boolean; timeout?: number }) => {
      note(v, name);
      const conn = await s.connection();
      const p = s.progress(`${v} ${name}`);
      let status: DomainStatus;
      try {
        status = await runLifecycle(conn, v, name, { signal: ctx.signal, onProgress: p.onProgress, timeoutMs: opts.timeout });
      } finally {
        p.done();
      }
      if (json(opts)) s.printJson({ name, operation: v, state: status.state, reason: status.reason });
      else s.info(`Domain ${name} ${done}`);
    });
  }

  verb('list', 'List active domains, or all with --all')
    .option('--all', 'include inactive domains')
    .option('--name', 'print only the names, one per line')
    .action(async (opts: { json?: boolean; all?: boolean; name?: boolean }) => {
      note('list');
      const conn = await s.connection();
      const domains = await conn.listDomains({ all: !!opts.all });
      if (opts.name) {
        if (json(opts)) s.printJson(domains.map((d) => d.name));
        else for (const d of domains) s.io.out(d.name);
      } else if (json(opts)) {
        s.printJson(domains);
      } else {
        s.io.out(table(['Name', 'State', 'Reason', 'UUID'], domains.map((d) => [d.name, stateText(d.state), d.reason, d.uuid ?? '-'])));
      }
    });

  verb('jobs', "List the node's queued and running jobs (the daemon's, through virtkitd)").action(async (opts: { json?: boolean }) => {
    note('jobs');
    const conn = await s.connection();
    const jobs = await conn.listJobs();
    if (json(opts)) s.printJson(jobs);
    else s.io.out(table(['Id', 'Domain', 'Operation', 'State', 'Progress'], jobs.map((j) => [String(j.id), j.domain, j.operation, j.state, `${j.percent}% ${j.message}`.trim()])));
  });

  verb('cancel-job', 'Cancel a queued or running job by its id (see jobs)')
    .argument('<id>', 'job id')
    .action(async (id: string, opts: { json?: boolean }) => {
      note('cancel-job');
      if (!/^\d{1,15}$/.test(id)) throw new VirtkitError('INVALID_ARGUMENT', `job id ${JSON.stringify(id)} is not a number`);
      const conn = await s.connection();
      if (!(await conn.cancelJob(Number(id)))) throw new VirtkitError('NOT_FOUND', `no job ${id} on ${conn.uri.uri}`);
      if (json(opts)) s.printJson({ id: Number(id), cancelled: true });
      else s.info(`Job ${id} cancelled`);
    });

  named(verb('dominfo', 'Show basic facts about a domain')).action(async (name: string, opts: { json?: boolean }) => {
    note('dominfo', name);
    const conn = await s.connection();
    const info = await conn.info(name);
    const config = await conn.getConfig(name);
    const summary = (await conn.listDomains({ all: true })).find((d) => d.name === name);
    const persistent = summary?.persistent ?? true;
    const autostart = summary?.autostart ?? false;
    if (json(opts)) {
      s.printJson({ name, uuid: config.uuid, osType: config.os.type, ...info, persistent, autostart });
      return;
    }
    s.io.out(
      keyValues([
        ['Name', name],
        ['UUID', config.uuid ?? '-'],
        ['OS Type', config.os.type],
        ['State', stateText(info.state, info.reason)],
        ['CPU(s)', String(info.vcpus)],
        ['CPU time', `${(Number(info.cpuTimeNs) / 1e9).toFixed(1)}s`],
        ['Max memory', `${info.maxMemoryKib} KiB`],
        ['Used memory', `${info.memoryKib} KiB`],
        ['Persistent', persistent ? 'yes' : 'no'],
        ['Autostart', autostart ? 'enable' : 'disable'],
        ...Object.entries(info.details ?? {}).map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
      ]),
    );
  });

  named(verb('autostart', 'Mark a domain to start when the node manager (virtkitd) starts'))
    .option('--disable', 'clear the mark instead')
    .action(async (name: string, opts: { json?: boolean; disable?: boolean }) => {
      note('autostart', name);
      const conn = await s.connection();
      await conn.setAutostart(name, !opts.disable);
      if (json(opts)) s.printJson({ name, autostart: !opts.disable });
      else s.info(`Domain ${name} ${opts.disable ? 'unmarked as autostarted' : 'marked as autostarted'}`);
    });

  named(verb('dumpconfig', 'Print the domain config as JSON'))
    .option('--live', 'the config the running domain was started with, rather than the persistent one')
    .action(async (name: string, opts: { json?: boolean; live?: boolean }) => {
      note('dumpconfig', name);
      const conn = await s.connection();
      const config = await conn.getConfig(name, { live: !!opts.live });
      // Always JSON: pretty for people, one line in --json mode (one document per line).
      s.io.out(json(opts) ? toJson(config) : toJson(config, 2));
    });

  named(verb('console', "Attach to the domain's console (Ctrl-] detaches); with --json, its output as JSON lines"))
    .option('--no-stdin', 'only show the output, send nothing')
    .action(async (name: string, opts: { json?: boolean; stdin?: boolean }) => {
      note('console', name);
      const conn = await s.connection({ watch: false });
      const sock = await conn.console(name);
      const input = process.stdin;
      const interactive = opts.stdin !== false;
      if (!json(opts) && input.isTTY) s.io.err(`Connected to domain ${name}; escape character is ^]`);
      let failed: Error | undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          sock.destroy();
          if (interactive) {
            if (input.isTTY) input.setRawMode(false);
            input.off('data', onInput);
            input.pause();
          }
          ctx.signal.removeEventListener('abort', done);
          resolve();
        };
        const onInput = (d: Buffer) => {
          const esc = d.indexOf(0x1d); // Ctrl-]
          if (esc >= 0) {
            if (esc > 0) sock.write(d.subarray(0, esc));
            return done();
          }
          sock.write(d);
        };
        sock.on('data', (d: Buffer) => (json(opts) ? s.printJson({ domain: name, data: d.toString('utf8') }) : process.stdout.write(d)));
        sock.once('close', done);
        // A stream that fails (the daemon lost, the socket reset) ends the console with the reason.
        sock.once('error', (e: Error) => {
          failed = e;
          done();
        });
        ctx.signal.addEventListener('abort', done, { once: true });
        if (interactive) {
          if (input.isTTY) input.setRawMode(true);
          input.on('data', onInput);
          input.resume();
        }
      });
      if (failed) throw failed;
    });

  named(verb('exec', "Run a command inside a running domain: virtkit exec NAME -- CMD [ARGS...]; exits with the command's exit code"))
    .argument('<command...>', "the command and its arguments (after '--' when they start with '-')")
    .option('--env <K=V>', 'set a variable in the command\'s environment (repeatable)', envPair)
    .option('--cwd <dir>', 'absolute working directory inside the domain')
    .option('--timeout <ms>', 'kill the command after this long', integer('--timeout', 1))
    .option('--stdin', 'send standard input (read to its end, as UTF-8 text) to the command')
    .action(async (name: string, argv: string[], opts: { json?: boolean; env?: Record<string, string>; cwd?: string; timeout?: number; stdin?: boolean }) => {
      note('exec', name);
      const conn = await s.connection();
      const stdin = opts.stdin ? await s.io.readStdin() : undefined;
      const r = await conn.exec(name, argv, {
        signal: ctx.signal,
        ...(opts.env !== undefined ? { env: opts.env } : {}),
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
        ...(opts.timeout !== undefined ? { timeoutMs: opts.timeout } : {}),
        ...(stdin !== undefined ? { stdin } : {}),
      });
      if (json(opts)) {
        const utf8 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
        s.printJson({ exitCode: r.exitCode, signal: r.signal, stdout: utf8(r.stdout), stderr: utf8(r.stderr), truncated: r.truncated });
      } else {
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
        if (r.truncated) s.io.err(`virtkit: the output of the command in ${name} was truncated`);
      }
      failing.exitCode = execExitCode(r);
    });

  verb('nodeinfo', 'Show the node: CPUs, memory, NUMA cells, hypervisor').action(async (opts: { json?: boolean }) => {
    note('nodeinfo');
    const conn = await s.connection();
    const n = await conn.nodeInfo();
    if (json(opts)) {
      s.printJson(n);
      return;
    }
    s.io.out(
      keyValues([
        ['CPU model', n.cpuModel],
        ['CPU(s)', String(n.cpus)],
        ['CPU frequency', `${n.mhz} MHz`],
        ['CPU socket(s)', String(n.sockets)],
        ['Core(s) per socket', String(n.coresPerSocket)],
        ['Thread(s) per core', String(n.threadsPerCore)],
        ['NUMA cell(s)', String(n.numa.length)],
        ['Memory size', `${n.memoryKib} KiB`],
        ['Hypervisor', `${n.hypervisor} ${n.hypervisorVersion}`],
        ...n.numa.map((c): [string, string] => [`NUMA cell ${c.id}`, `CPUs ${cpuRanges(c.cpus)}, ${c.memoryKib} KiB`]),
        ...n.facts.map(([k, v]): [string, string] => [k, v]),
      ]),
    );
  });

  verb('capabilities', "Show the driver: name, version, URI schemes, operations, features, host world").action(async (opts: { json?: boolean }) => {
    note('capabilities');
    const conn = await s.connection();
    // A promise through the daemon (answered remotely), the value itself locally.
    const c = await conn.capabilities();
    if (json(opts)) {
      s.printJson(c);
      return;
    }
    const none = (l: string[]) => (l.length ? l.join(', ') : 'none');
    s.io.out(
      keyValues([
        ['URI', c.uri],
        ['Driver', `${c.driver.name} ${c.driver.version}`],
        ['Plugin', `${c.plugin.name} ${c.plugin.version}`],
        ['Plugin world', c.plugin.world],
        ['Host world', c.hostWorld],
        ['URI schemes', none(c.driver.uriSchemes)],
        ['Operations', none(c.driver.operations)],
        ['Features', none(c.driver.features)],
        ['Config section', c.driver.configSchema ? `driver.${c.driver.name} (checked against the driver's schema)` : 'none'],
      ]),
    );
  });

  verb('plugins', 'List the installed driver plugins (needs no connection)').action(async (opts: { json?: boolean }) => {
    note('plugins');
    const host = await s.host();
    const plugins = await host.plugins.summaries();
    if (json(opts)) {
      s.printJson(plugins);
      return;
    }
    // An executable grant may pin its arguments ({ path, args }): shown as the policy errors show it.
    const entry = (v: string | { path: string; args: string }) => (typeof v === 'string' ? v : `${v.path} (args ${v.args})`);
    const grants = (g: Record<string, Array<string | { path: string; args: string }> | undefined>) =>
      Object.entries(g)
        .filter(([, v]) => v?.length)
        .map(([k, v]) => `${k}: ${v!.map(entry).join(', ')}`)
        .join('; ') || 'none';
    s.io.out(table(['Name', 'Version', 'Schemes', 'World', 'Grants requested'], plugins.map((p) => [p.name, p.version, p.schemes.map((x) => `${x}://`).join(', '), p.world, grants(p.grants as Record<string, Array<string | { path: string; args: string }> | undefined>)])));
  });

  verb('events', 'Print lifecycle events: SEQ TIME DOMAIN KIND REASON')
    .option('--follow', 'keep printing new events until Ctrl-C, --count or the global --timeout')
    .option('--since <seq>', 'only events after this sequence number (with --follow: replay those first)', integer('--since'))
    .option('--count <n>', 'stop after this many events', integer('--count'))
    .action(async (opts: { json?: boolean; follow?: boolean; since?: number; count?: number }) => {
      note('events');
      const conn = await s.connection();
      const print = (e: DomainEvent) =>
        json(opts)
          ? s.printJson({ seq: e.seq, time: e.time, domain: e.domain, kind: e.kind, reason: e.reason, ...(e.detail !== undefined ? { detail: e.detail } : {}) })
          : s.io.out(eventLine(e));
      if (opts.count === 0) return;
      let n = 0;
      if (!opts.follow) {
        // What the node kept: replay, then stop instead of following.
        for await (const e of conn.events({ since: opts.since ?? 0, follow: false })) {
          print(e);
          if (opts.count !== undefined && ++n >= opts.count) break;
        }
        return;
      }
      for await (const e of conn.events({ since: opts.since, signal: ctx.signal })) {
        print(e);
        if (opts.count !== undefined && ++n >= opts.count) break;
      }
    });

  addPkiVerbs(root, s, json, note);

  root
    .command('help')
    .description('Show the usage, or one verb\'s options')
    .argument('[verb]', 'a verb')
    .action((name?: string) => {
      note('help');
      if (!name) {
        s.io.out(topHelp());
        return;
      }
      const cmd = root.commands.find((c) => c.name() === name);
      if (!cmd) root.error(`error: unknown verb '${name}'`, { code: 'virtkit.unknownVerb', exitCode: 2 });
      s.io.out(cmd!.helpInformation());
    });

  // Errors of the root (unknown verb) show the short usage; the verbs' own errors show
  // their help, as set before they were created.
  root.showHelpAfterError(usage);
  return root;
}
