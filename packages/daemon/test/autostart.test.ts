// The BUILT virtkitd (run `pnpm build` first) opening the nodes its config names at start and
// starting their autostart domains: a real QEMU guest (scripts/build-test-guest.sh), under TCG
// where KVM is not usable. The domains are defined in-process with core on the same state
// root before the daemon starts, as an admin would have done earlier.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, Host } from '@virtkit/core';
import { connectRemote, type RemoteConnection } from '@virtkit/rpc';
import { hasGuest, hostOptions as hostOptionsAt, qemuPids, repo, stopGuests, tinyVm, until as untilFor } from './guest.js';
import { spawnDaemon, type RunningDaemon } from './spawn.js';
import { parseDaemonConfig } from '../src/config.js';


describe('the nodes config field', () => {
  it('defaults to none and accepts local node URIs only, naming the entry at fault', () => {
    expect(parseDaemonConfig({}, undefined).nodes).toEqual([]);
    expect(parseDaemonConfig({ nodes: ['qemu:///system', 'test:///default'] }, '/x.json').nodes).toEqual(['qemu:///system', 'test:///default']);
    expect(() => parseDaemonConfig({ nodes: 'qemu:///system' }, '/x.json')).toThrow(/\/nodes: must be a list/);
    expect(() => parseDaemonConfig({ nodes: ['test:///default', 3] }, '/x.json')).toThrow(/\/nodes\/1: must be a node URI/);
    expect(() => parseDaemonConfig({ nodes: ['not a uri'] }, '/x.json')).toThrow(/\/nodes\/0: uri "not a uri" is not a connection URI/);
    expect(() => parseDaemonConfig({ nodes: ['qemu+tls://h/system'] }, '/x.json')).toThrow(/\/nodes\/0: .*not a local node/);
    expect(() => parseDaemonConfig({ nodes: ['qemu://h/system'] }, '/x.json')).toThrow(/\/nodes\/0: .*not a local node/);
    expect(() => parseDaemonConfig({ nodes: ['qemu+unix:///system'] }, '/x.json')).toThrow(/\/nodes\/0: .*not a local node/);
    expect(() => parseDaemonConfig({ nodes: ['test:///default', 'test:///default'] }, '/x.json')).toThrow(/\/nodes\/1: .*listed twice/);
  });
});

// Short paths: a unix socket path must stay under 108 bytes.
const root = mkdtempSync('/tmp/vk-');
const suffix = String(process.pid % 100000);
const AUTO = `auto${suffix}`;
const MANUAL = `manual${suffix}`;
const adminSock = join(root, 'admin.sock');

const vm = (name: string) => tinyVm(root, name);


const until = (what: string, f: () => boolean, ms = 30000) => untilFor(what, f, ms, 50);

describe.skipIf(!hasGuest && !process.env.CI)('virtkitd autostart on qemu:///system', () => {
  let d: RunningDaemon | undefined;
  let remote: RemoteConnection | undefined;

  beforeAll(async () => {
    const host = await new Host(hostOptionsAt(root)).init();
    try {
      const conn = await connect('qemu:///system', { host });
      await conn.define(vm(AUTO));
      await conn.define(vm(MANUAL));
      await conn.setAutostart(AUTO, true);
      await conn.close();
    } finally {
      await host.close();
    }
  });

  afterAll(async () => {
    remote?.close();
    if (d && d.child.exitCode === null && d.child.signalCode === null) {
      d.child.kill('SIGKILL');
      await d.exit;
    }
    // The daemon left the VM running on purpose: stop it through core, as an admin would.
    await stopGuests(root, [AUTO, MANUAL]);
  });

  it('starts the autostart domain at start, and leaves it running when it stops', async () => {
    const config = join(root, 'virtkitd.json');
    writeFileSync(config, JSON.stringify({
      listen: [],
      unix: { admin: adminSock, readOnly: join(root, 'ro.sock') },
      host: { stateRoot: join(root, 'state'), runtimeRoot: join(root, 'run'), cacheDir: join(repo, '.cache', 'glue') },
      nodes: ['qemu:///system'],
    }));
    d = spawnDaemon(config, root);
    const { log, exit } = d;
    let exited = false;
    void exit.then(() => (exited = true));
    await until('the autostart log line', () => exited || /"event":"autostart"/.test(log()) || /"event":"autostart-failed"/.test(log()), 60_000);
    expect(exited, log()).toBe(false);
    expect(log()).toMatch(/"event":"node-open"[^\n]*"node":"qemu:\/\/\/system"/);
    expect(log()).toContain(`"event":"autostart","node":"qemu:///system","domain":"${AUTO}"`);
    expect(log()).not.toMatch(/"event":"autostart-failed"/);
    expect(log()).not.toContain(`"domain":"${MANUAL}"`);

    const pids = qemuPids(AUTO);
    expect(pids).toHaveLength(1);
    expect(qemuPids(MANUAL)).toEqual([]);

    remote = await connectRemote(`qemu+unix:///system?socket=${adminSock}`, { keepaliveMs: 0 });
    const list = await remote.listDomains({ all: true });
    expect(list.find((d) => d.name === AUTO)).toMatchObject({ state: 'running', autostart: true });
    expect(list.find((d) => d.name === MANUAL)).toMatchObject({ state: 'shut-off', autostart: false });
    remote.close();
    remote = undefined;

    d.child.kill('SIGTERM');
    expect(await exit, log()).toEqual({ code: 0, signal: null });
    expect(log()).toMatch(/"event":"stopped"/);
    expect(qemuPids(AUTO)).toEqual(pids); // detached, not stopped
    expect(qemuPids(MANUAL)).toEqual([]);
  }, 90_000);
});
