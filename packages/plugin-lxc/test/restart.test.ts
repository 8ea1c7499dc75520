// Managers that come and go: a container outlives the manager that started it; a new
// manager (a new Host and Connection on the same node dirs, or the next `virtkit` command)
// finds it running (or frozen) and watches it again; one stopped meanwhile is reported off.
// The CLI verbs are the VM ones: start, list, exec (exit code passed through), console.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { noRootfs, repo, rootfs, until } from './helpers.js';
import { connect, Host, type DomainEvent } from '@virtkit/core';

const cli = join(repo, 'packages', 'cli', 'bin', 'virtkit.js');
const root = mkdtempSync('/tmp/vk-');
const lxcpath = join(root, 'run', 'virtkit-plugin-lxc', 'system');
const hostOptions = { stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue'), pluginSearch: [], pluginPaths: [join(repo, 'packages', 'plugin-lxc')] };
const env = { ...process.env, VIRTKIT_CONFIG: join(root, 'virtkit.json') };
writeFileSync(env.VIRTKIT_CONFIG, JSON.stringify({ stateRoot: hostOptions.stateRoot, runtimeRoot: hostOptions.runtimeRoot, cacheDir: hostOptions.cacheDir, pluginPaths: hostOptions.pluginPaths }));

const ct = (name: string) => ({ name, memoryMiB: 64, vcpus: 1, os: { type: 'container', rootfs } });

function virtkit(...cmd: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [cli, '-c', 'lxc:///system', ...cmd], { env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const lxcState = (uuid: string) => {
  const r = spawnSync('lxc-info', ['-n', uuid, '-P', lxcpath, '-s', '-H'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'ABSENT';
};


describe.skipIf(noRootfs)('managers that come and go', () => {
  const uuids: string[] = [];
  afterAll(() => {
    for (const u of uuids) spawnSync('lxc-stop', ['-n', u, '-P', lxcpath, '-k']);
  });

  it('a new Connection on the same node re-attaches: running and frozen containers keep their state, and are watched again', async () => {
    let host = await new Host(hostOptions).init();
    let conn = await connect('lxc:///system', { host });
    await conn.define(ct('keeps'));
    await conn.define(ct('frozen'));
    await conn.define(ct('dies'));
    for (const n of ['keeps', 'frozen', 'dies']) {
      await conn.start(n);
      uuids.push((await conn.getConfig(n)).uuid!);
    }
    await conn.suspend('frozen');
    const initPid = ((await conn.info('keeps')).details as { initPid: number }).initPid;
    await conn.close();
    await host.close();

    // Meanwhile, with no manager: one container is stopped from outside.
    const dies = uuids[2]!;
    execFileSync('lxc-stop', ['-n', dies, '-P', lxcpath, '-k']);

    host = await new Host(hostOptions).init();
    conn = await connect('lxc:///system', { host });
    const events: DomainEvent[] = [];
    conn.onEvent((e) => events.push(e));
    const list = Object.fromEntries((await conn.listDomains({ all: true })).map((d) => [d.name, `${d.state}/${d.reason}`]));
    expect(list).toEqual({ keeps: 'running/booted', frozen: 'paused/user', dies: 'shut-off/crashed' });
    expect(((await conn.info('keeps')).details as { initPid: number }).initPid).toBe(initPid);
    expect(lxcState(uuids[1]!)).toBe('FROZEN');
    await conn.resume('frozen');
    expect(lxcState(uuids[1]!)).toBe('RUNNING');
    expect((await conn.exec('frozen', ['echo', 'thawed'])).stdout).toEqual(new Uint8Array(Buffer.from('thawed\n')));

    // The new manager watches: a container whose init exits is reported stopped.
    await conn.exec('keeps', ['kill', '-USR2', '1']);
    await until('the stop event', () => events.some((e) => e.domain === 'keeps' && e.kind === 'stopped'));
    expect((await conn.listDomains({ all: true })).find((d) => d.name === 'keeps')).toMatchObject({ state: 'shut-off', reason: 'shutdown' });
    expect(lxcState(uuids[0]!)).toBe('ABSENT');
    await conn.destroy('frozen');
    await conn.close();
    await host.close();
  });

  it('a long-lived manager keeps watching while short CLI commands re-attach and exit (each watches with its own watcher)', async () => {
    const host = await new Host(hostOptions).init();
    const conn = await connect('lxc:///system', { host });
    const events: DomainEvent[] = [];
    conn.onEvent((e) => events.push(e));
    await conn.define(ct('shared'));
    await conn.start('shared');
    uuids.push((await conn.getConfig('shared')).uuid!);
    // Two commands open the node, re-attach (watching for as long as they live) and exit.
    expect(virtkit('--json', 'list').code).toBe(0);
    expect(virtkit('dominfo', 'shared').code).toBe(0);
    // The container stops by itself: the long-lived manager still sees it.
    await conn.exec('shared', ['kill', '-USR2', '1']);
    await until('the stop event', () => events.some((e) => e.domain === 'shared' && e.kind === 'stopped'));
    expect((await conn.listDomains({ all: true })).find((d) => d.name === 'shared')).toMatchObject({ state: 'shut-off', reason: 'shutdown' });
    await conn.undefine('shared');
    await conn.close();
    await host.close();
  });

  it('the CLI: start in one process, exec and console in later ones, destroy in yet another', async () => {
    const file = join(root, 'cli.json');
    writeFileSync(file, JSON.stringify(ct('cli')));
    expect(virtkit('define', file).code).toBe(0);
    const started = virtkit('start', 'cli');
    expect(started.code, started.err).toBe(0);
    const list = JSON.parse(virtkit('--json', 'list').out) as Array<{ name: string; state: string }>;
    expect(list.find((d) => d.name === 'cli')).toMatchObject({ state: 'running' });

    const ok = virtkit('exec', 'cli', '--', '/bin/sh', '-c', 'echo out && echo err >&2 && exit 3');
    expect(ok).toMatchObject({ code: 3, out: 'out\n' });
    expect(ok.err).toContain('err');

    const child = spawn(process.execPath, [cli, '-c', 'lxc:///system', 'console', 'cli', '--json', '--no-stdin'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const text = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l).data).join('');
    await new Promise((r) => setTimeout(r, 1500));
    expect(virtkit('exec', 'cli', '--', '/bin/sh', '-c', 'echo VIRTKIT-CLI-CONSOLE > /dev/console').code).toBe(0);
    await until('the console to speak', () => text().includes('VIRTKIT-CLI-CONSOLE'));
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;

    expect(virtkit('destroy', 'cli').code).toBe(0);
    expect(JSON.parse(virtkit('--json', 'list', '--all').out).find((d: { name: string }) => d.name === 'cli')).toMatchObject({ state: 'shut-off', reason: 'destroyed' });
  });
});
