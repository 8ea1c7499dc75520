// The BUILT virtkit command, run as a child process against test:///default and node
// documents. Run `pnpm build` first: these tests use packages/cli/dist.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitCommands, UsageError } from '../src/split.js';
import { jsonErrorOffset } from '../src/json-text.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'virtkit.js');

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let dir: string;

/** Runs virtkit in the temp dir; `whenStdout` lets a test act once stdout shows something. */
function virtkit(args: string[], opts: { input?: string; env?: Record<string, string>; whenStdout?: (out: string, kill: (s: NodeJS.Signals) => void) => void } = {}): Promise<Result> {
  const env: Record<string, string | undefined> = { ...process.env, ...opts.env };
  if (!opts.env?.VIRTKIT_DEFAULT_URI) delete env.VIRTKIT_DEFAULT_URI;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      opts.whenStdout?.(stdout, (s) => child.kill(s));
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

const jsonLines = (out: string) => out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

const web1 = { name: 'web1', memoryMiB: 512, vcpus: 1, os: { type: 'hvm' } };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'virtkit-cli-'));
  writeFileSync(join(dir, 'web1.json'), JSON.stringify(web1, null, 2));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('virtkit on test:///default', () => {
  it('lists the default running domain test', async () => {
    const r = await virtkit(['list']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\s*Name\s+State\s+Reason\s+UUID$/);
    expect(lines[1]).toMatch(/^-+$/);
    expect(lines[2]).toMatch(/^\s*test\s+running\s+booted\s+[0-9a-f-]{36}$/);
    expect(lines).toHaveLength(3);
  });

  it('uses -c, and $VIRTKIT_DEFAULT_URI when -c is not given', async () => {
    const a = await virtkit(['-c', 'test:///default', 'list', '--name']);
    expect([a.code, a.stdout]).toEqual([0, 'test\n']);
    const b = await virtkit(['list', '--name'], { env: { VIRTKIT_DEFAULT_URI: 'foo:///x' } });
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('NO_DRIVER');
  });

  it('runs a lifecycle as one command string on one connection', async () => {
    const r = await virtkit(['-c', 'test:///default', 'define web1.json; start web1; suspend web1; resume web1; shutdown web1; dominfo web1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.slice(0, 5)).toEqual([
      'Domain web1 defined from web1.json',
      'Domain web1 started',
      'Domain web1 suspended',
      'Domain web1 resumed',
      'Domain web1 shut down',
    ]);
    const info = Object.fromEntries(lines.slice(5).map((l) => /^([^:]+):\s+(.*)$/.exec(l)!.slice(1, 3) as [string, string]));
    expect(info).toMatchObject({ Name: 'web1', 'OS Type': 'hvm', 'CPU(s)': '1', 'Max memory': '524288 KiB', 'Used memory': '0 KiB', Persistent: 'yes' });
    expect(info.State).toMatch(/^shut off/);
    expect(info.UUID).toMatch(/^[0-9a-f-]{36}$/);
    expect(info['CPU time']).toMatch(/^\d+\.\ds$/);
  });

  it('takes a command as several words, and ; as its own word', async () => {
    const r = await virtkit(['define', 'web1.json', ';', 'list', '--all', '--name']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('Domain web1 defined from web1.json\ntest\nweb1\n');
    const q = await virtkit(['-q', 'define web1.json; start web1; list --name']);
    expect(q.stdout).toBe('test\nweb1\n');
  });

  it('prints one JSON document per command with --json, bigints as numbers', async () => {
    const r = await virtkit(['--json', 'define web1.json; start web1; suspend web1; dominfo web1; list; nodeinfo; dumpconfig web1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [defined, started, suspended, info, list, node, config] = jsonLines(r.stdout);
    expect(defined).toMatchObject({ name: 'web1', state: 'shut-off', persistent: true });
    expect(started).toEqual({ name: 'web1', operation: 'start', state: 'running', reason: 'booted' });
    expect(suspended).toEqual({ name: 'web1', operation: 'suspend', state: 'paused', reason: 'user' });
    expect(info).toMatchObject({ name: 'web1', state: 'paused', reason: 'user', vcpus: 1, maxMemoryKib: 524288, memoryKib: 524288, uuid: defined!.uuid });
    expect(typeof info!.cpuTimeNs).toBe('number');
    expect(list).toEqual([
      expect.objectContaining({ name: 'test', state: 'running' }),
      expect.objectContaining({ name: 'web1', state: 'paused' }),
    ]);
    expect(node).toMatchObject({ cpus: 16, memoryKib: 16 * 1024 * 1024, numa: [{ id: 0, cpus: [0, 1, 2, 3, 4, 5, 6, 7] }, { id: 1 }] });
    expect(config).toEqual({ ...web1, uuid: defined!.uuid });
  });

  it('accepts --json after the verb too, and pretty-prints dumpconfig without it', async () => {
    const r = await virtkit(['dominfo test --json; dumpconfig test']);
    expect(r.code).toBe(0);
    const [first, ...rest] = r.stdout.split('\n');
    expect(JSON.parse(first!)).toMatchObject({ name: 'test', state: 'running', vcpus: 2 });
    expect(JSON.parse(rest.join('\n'))).toMatchObject({ name: 'test', memoryMiB: 8192 });
    expect(rest[0]).toBe('{');
  });

  it('prints the events of the invocation in order, seq increasing', async () => {
    const r = await virtkit(['define web1.json; start web1; suspend web1; resume web1; reboot web1; destroy web1; events']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n').filter((l) => /^\d+ /.test(l));
    const parsed = lines.map((l) => l.split(' '));
    expect(parsed.map((p) => p.slice(2))).toEqual([
      ['web1', 'defined', 'unknown'],
      ['web1', 'started', 'booted'],
      ['web1', 'suspended', 'user'],
      ['web1', 'resumed', 'unpaused'],
      ['web1', 'rebooted', 'booted'],
      ['web1', 'stopped', 'destroyed'],
    ]);
    const seqs = parsed.map((p) => Number(p[0]));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const p of parsed) expect(new Date(p[1]!).toISOString()).toBe(p[1]);

    const j = await virtkit(['--json', '-q', 'define web1.json; start web1; shutdown web1; events --since 1; events --count 1']);
    const events = jsonLines(j.stdout).slice(3);
    expect(events.map((e) => [e.seq, e.kind])).toEqual([[2, 'started'], [3, 'stopped'], [1, 'defined']]);
    expect(events[2]).toMatchObject({ domain: 'web1', detail: 'added' });
  });

  it('events --follow stops after --count events', async () => {
    const r = await virtkit(['define web1.json; start web1; events --follow --since 0 --count 2']);
    expect(r.code).toBe(0);
    expect(r.stdout.trimEnd().split('\n').slice(2).map((l) => l.split(' ')[3])).toEqual(['defined', 'started']);
  });

  it('reads a config from standard input with -', async () => {
    const r = await virtkit(['define -; dominfo web1'], { input: JSON.stringify(web1) });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Domain web1 defined from standard input');
  });

  it('stops at the first failing command and exits with its code', async () => {
    const r = await virtkit(['list --name; start test; list']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('test\n');
    expect(r.stderr).toMatch(/^error: OPERATION_INVALID: .*already active/m);
    expect(r.stderr).toMatch(/^hint: virtkit dominfo test /m);
  });
});

describe('errors and exit codes', () => {
  it('exits 1 and prints every JSON pointer of an invalid config', async () => {
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ name: 'bad name!', memoryMiB: 0, vcpus: 'two', os: { type: 'hvm' }, extra: true }));
    const r = await virtkit(['define', 'bad.json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.split('\n');
    expect(lines[0]).toMatch(/^error: INVALID_CONFIG: bad\.json: invalid domain config/);
    for (const p of ['/name', '/memoryMiB', '/vcpus', '/extra']) expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^  ${p}: `)));
    expect(r.stderr).toMatch(/^hint: /m);
  });

  it('names the file, line and column of bad JSON', async () => {
    writeFileSync(join(dir, 'syntax.json'), '{\n  "name": "x",\n  "vcpus": 1,,\n}\n');
    const r = await virtkit(['define', 'syntax.json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: INVALID_CONFIG: syntax\.json: not valid JSON: .* at line 3, column 14$/m);
    writeFileSync(join(dir, 'literal.json'), '{"name": tru}');
    const l = await virtkit(['define', 'literal.json']);
    expect(l.stderr).toMatch(/literal\.json: not valid JSON: .* at line 1, column 13$/m);
    const m = await virtkit(['define', 'missing.json']);
    expect([m.code, m.stderr]).toEqual([1, expect.stringMatching(/^error: NOT_FOUND: cannot read missing\.json/)]);
  });

  it('exits 2 with the usage for an unknown verb, option or a missing argument', async () => {
    const v = await virtkit(['frobnicate']);
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(v.stderr).toMatch(/^Usage: virtkit /m);
    const o = await virtkit(['list', '--bogus']);
    expect(o.code).toBe(2);
    expect(o.stderr).toMatch(/unknown option '--bogus'[\s\S]*Usage: virtkit list/);
    const a = await virtkit(['start']);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/missing required argument 'name'[\s\S]*Usage: virtkit start/);
    const n = await virtkit(['events', '--count', 'x']);
    expect(n.code).toBe(2);
    const op = await virtkit(['list | cat']);
    expect(op.code).toBe(2);
    expect(op.stderr).toMatch(/operator '\|'/);
    const none = await virtkit([]);
    expect(none.code).toBe(2);
    // A usage error later in a command string: nothing runs after it.
    const later = await virtkit(['list --name; start; list']);
    expect([later.code, later.stdout]).toEqual([2, 'test\n']);
  });

  it('exits 1 with NO_DOMAIN and a hint for a domain that does not exist', async () => {
    const r = await virtkit(['dominfo', 'nosuch']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: NO_DOMAIN: .*nosuch/m);
    expect(r.stderr).toMatch(/^hint: virtkit list --all shows defined domains/m);
  });

  it('exits 1 naming the installed plugins for an unknown scheme', async () => {
    const r = await virtkit(['-c', 'foo:///x', 'list']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: NO_DRIVER: .*foo:\/\//m);
    expect(r.stderr).toContain('@virtkit/plugin-test');
    expect(r.stderr).toMatch(/^hint: virtkit plugins /m);
  });

  it('cancels a running job on Ctrl-C and exits 130', async () => {
    writeFileSync(join(dir, 'slow.json'), JSON.stringify({ ...web1, name: 'slow', driver: { test: { bootDelayMs: 60_000 } } }));
    let sent = false;
    const started = Date.now();
    const r = await virtkit(['define slow.json; start slow; list'], {
      whenStdout: (out, kill) => {
        if (!sent && out.includes('defined')) {
          sent = true;
          setTimeout(() => kill('SIGINT'), 300);
        }
      },
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/^error: CANCELLED: start slow was cancelled/m);
    expect(r.stdout).not.toContain('started');
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('turns --timeout into a TIMEOUT error (exit 1)', async () => {
    writeFileSync(join(dir, 'slow.json'), JSON.stringify({ ...web1, name: 'slow', driver: { test: { bootDelayMs: 60_000 } } }));
    const r = await virtkit(['--timeout', '500', 'define slow.json; start slow']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: TIMEOUT: start slow did not finish within 500 ms/m);
  });
});

describe('node documents, plugins, help', () => {
  it('loads test:///ABSOLUTE/PATH/node.json and lists its domains', async () => {
    const doc = {
      domains: [
        { config: { name: 'db1', memoryMiB: 1024, vcpus: 2, os: { type: 'hvm' } }, state: 'running' },
        { config: { name: 'cache', memoryMiB: 256, vcpus: 1, os: { type: 'hvm' } }, state: 'paused' },
        { config: { name: 'spare', memoryMiB: 256, vcpus: 1, os: { type: 'hvm' } }, state: 'shut-off' },
      ],
      node: { cpuModel: 'doc-cpu', memoryKib: 4194304 },
    };
    const file = join(dir, 'node.json');
    writeFileSync(file, JSON.stringify(doc));
    const r = await virtkit(['-c', `test://${file}`, '--json', 'list --all; list; nodeinfo']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [all, active, node] = jsonLines(r.stdout) as unknown as [Array<Record<string, unknown>>, Array<Record<string, unknown>>, Record<string, unknown>];
    expect(all.map((d) => [d.name, d.state]).sort()).toEqual([['cache', 'paused'], ['db1', 'running'], ['spare', 'shut-off']]);
    expect(active.map((d) => d.name).sort()).toEqual(['cache', 'db1']);
    expect(node).toMatchObject({ cpuModel: 'doc-cpu', memoryKib: 4194304 });
    const human = await virtkit(['-c', `test://${file}`, 'list', '--all']);
    expect(human.stdout).toMatch(/^\s*db1\s+running\s/m);
    expect(human.stdout).toMatch(/^\s*spare\s+shut off\s/m);
  });

  it('lists the installed plugins without opening a connection', async () => {
    // An unknown scheme proves no connection is opened for `plugins`.
    const r = await virtkit(['-c', 'foo:///x', 'plugins']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\s*Name\s+Version\s+Schemes\s+World/);
    expect(r.stdout).toMatch(/^\s*@virtkit\/plugin-test\s+\d+\.\d+\.\d+\s+test:\/\/\s+virtkit:driver\/hypervisor-driver@/m);
    // An argument-pinned executable grant (plugin-kvm's ip link) reads as the policy's errors write it.
    expect(r.stdout).toMatch(/^\s*@virtkit\/plugin-kvm\s.*executables: \/usr\/bin\/qemu-system-x86_64, \/usr\/sbin\/ip \(args link set dev .+\)/m);
    expect(r.stdout).not.toContain('[object Object]');
    const j = await virtkit(['--json', 'plugins']);
    expect(JSON.parse(j.stdout)).toContainEqual(expect.objectContaining({ name: '@virtkit/plugin-test', schemes: ['test'], grants: {} }));
  });

  it('shows capabilities and the node', async () => {
    const r = await virtkit(['capabilities; nodeinfo']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Driver:\s+test \d/m);
    expect(r.stdout).toMatch(/^URI schemes:\s+test$/m);
    expect(r.stdout).toMatch(/^Operations:\s+.*\bstart\b/m);
    expect(r.stdout).toMatch(/^Host world:\s+virtkit:driver\/hypervisor-driver@/m);
    expect(r.stdout).toMatch(/^CPU\(s\):\s+16$/m);
    expect(r.stdout).toMatch(/^Memory size:\s+16777216 KiB$/m);
    expect(r.stdout).toMatch(/^NUMA cell\(s\):\s+2$/m);
  });

  it('has help for the command and for each verb', async () => {
    const h = await virtkit(['help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^Verbs:$/m);
    for (const v of ['define', 'start', 'shutdown', 'dominfo', 'dumpconfig', 'events', 'plugins']) expect(h.stdout).toMatch(new RegExp(`^  ${v}\\b`, 'm'));
    expect(h.stdout).toMatch(/^Exit codes:$/m);
    const top = await virtkit(['--help']);
    expect(top.stdout).toBe(h.stdout);
    const s = await virtkit(['shutdown', '--help']);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/Usage: virtkit shutdown \[options\] <name>[\s\S]*--timeout <ms>/);
    const hv = await virtkit(['help', 'events']);
    expect(hv.stdout).toMatch(/--follow/);
  });
});

describe('virtkit exec on test:///default (its fake command set)', () => {
  it("writes the command's stdout and stderr to its own and exits with its exit code", async () => {
    const r = await virtkit(['exec', 'test', '--', 'echo', 'hello', '-n', 'world']);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, 'hello -n world\n', '']);
    const e = await virtkit(['exec', 'test', '--', 'exit', '3']);
    expect([e.code, e.stdout, e.stderr]).toEqual([3, '', '']);
    const m = await virtkit(['exec', 'test', '--', 'nope']);
    expect([m.code, m.stdout, m.stderr]).toEqual([127, '', 'nope: command not found\n']);
  });

  it('exits 128 + the signal number when a signal ended the command; --timeout kills it', async () => {
    expect((await virtkit(['exec', 'test', '--', 'kill', 'SIGTERM'])).code).toBe(143);
    expect((await virtkit(['exec', 'test', '--timeout', '50', '--', 'sleep', '5000'])).code).toBe(137);
  });

  it('passes --env, --cwd and, with --stdin, standard input', async () => {
    const r = await virtkit(['exec', 'test', '--env', 'B=x=y', '--env', 'A=1', '--cwd', '/srv', '--', 'env']);
    expect([r.code, r.stdout]).toEqual([0, 'A=1\nB=x=y\n']);
    expect((await virtkit(['exec', 'test', '--cwd', '/srv', '--', 'pwd'])).stdout).toBe('/srv\n');
    expect((await virtkit(['exec', 'test', '--stdin', '--', 'cat'], { input: 'piped ✓\n' })).stdout).toBe('piped ✓\n');
  });

  it('prints {exitCode, signal, stdout, stderr, truncated} with --json', async () => {
    const r = await virtkit(['--json', 'exec test -- echo hi; exec test -- kill HUP']);
    expect(r.code).toBe(129);
    expect(jsonLines(r.stdout)).toEqual([
      { exitCode: 0, signal: null, stdout: 'hi\n', stderr: '', truncated: false },
      { exitCode: null, signal: 'SIGHUP', stdout: '', stderr: '', truncated: false },
    ]);
  });

  it('stops a command string at a command that exits non-zero', async () => {
    const r = await virtkit(['exec test -- false; list --name']);
    expect([r.code, r.stdout]).toEqual([1, '']);
    const ok = await virtkit(['exec test -- true; list --name']);
    expect([ok.code, ok.stdout]).toEqual([0, 'test\n']);
  });

  it('exits 2 for a usage mistake, 1 for an argument core rejects or a missing or stopped domain', async () => {
    expect((await virtkit(['exec', 'test'])).code).toBe(2);
    const env = await virtkit(['exec', 'test', '--env', 'NOEQUALS', '--', 'true']);
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('--env takes NAME=VALUE, not "NOEQUALS"');
    const cwd = await virtkit(['exec', 'test', '--cwd', 'rel', '--', 'true']);
    expect([cwd.code, cwd.stderr.split('\n')[0]]).toEqual([1, 'error: INVALID_ARGUMENT: cwd must be an absolute path']);
    expect((await virtkit(['exec', 'nosuch', '--', 'true'])).stderr).toMatch(/^error: NO_DOMAIN: /);
    const off = await virtkit(['destroy test; exec test -- true']);
    expect([off.code, off.stderr.split('\n')[0]]).toEqual([1, 'error: OPERATION_INVALID: cannot exec in domain test: it is not running (state shut-off)']);
  });
});

describe('command splitting and JSON error offsets', () => {
  it('splits command strings the way virsh takes them', () => {
    expect(splitCommands(['define d.json; start d;dominfo d'])).toEqual([['define', 'd.json'], ['start', 'd'], ['dominfo', 'd']]);
    expect(splitCommands(['define "my file.json" ;; start d # comment'])).toEqual([['define', 'my file.json'], ['start', 'd']]);
    expect(splitCommands(['define', 'my file.json'])).toEqual([['define', 'my file.json']]);
    expect(splitCommands(['define', 'a.json;', 'start', 'a'])).toEqual([['define', 'a.json'], ['start', 'a']]);
    // After '--' the words are a command's own, ';' included.
    expect(splitCommands(['exec', 'c1', '--', 'sh', '-c', 'echo a; echo b'])).toEqual([['exec', 'c1', '--', 'sh', '-c', 'echo a; echo b']]);
    expect(splitCommands(['start', 'c1;', 'exec', 'c1', '--', 'sh', '-c', 'a; b'])).toEqual([['start', 'c1'], ['exec', 'c1', '--', 'sh', '-c', 'a; b']]);
    expect(splitCommands(['define $HOME/*.json'])).toEqual([['define', '$HOME/*.json']]);
    expect(() => splitCommands(['list && list'])).toThrow(UsageError);
    expect(splitCommands([' ; '])).toEqual([]);
  });

  it('finds where JSON text stops being valid', () => {
    expect(jsonErrorOffset('{"a": [1, 2, {"b": null}], "c": "x\\u00e9"}')).toBe(-1);
    expect(jsonErrorOffset('{"a": tru}')).toBe(9);
    expect(jsonErrorOffset('{"a": 1,}')).toBe(8);
    expect(jsonErrorOffset('{"a": 1')).toBe(7);
    expect(jsonErrorOffset('[1, 2] x')).toBe(7);
    expect(jsonErrorOffset('{"a": -}')).toBe(7);
    expect(jsonErrorOffset('"a\\q"')).toBe(3);
  });
});
