import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigValidator, domainSchema, type DomainConfig } from '../src/config/validate.js';
import { VirtkitError, type FieldError } from '../src/errors.js';

const pkgDir = resolve(fileURLToPath(import.meta.url), '../..');
const validator = new ConfigValidator();

function fieldsOf(fn: () => unknown): FieldError[] {
  try {
    fn();
  } catch (e) {
    expect(VirtkitError.is(e, 'INVALID_CONFIG')).toBe(true);
    return (e as VirtkitError).fields ?? [];
  }
  throw new Error('expected INVALID_CONFIG');
}
const pointers = (fields: FieldError[]) => fields.map((f) => f.pointer).sort();

const hvm = {
  $schema: 'https://virtkit.dev/schema/domain/0.1.json',
  name: 'web-01',
  uuid: '4DEA22B3-1D52-D8F3-2516-782E98AB3FA0',
  title: 'Web server',
  memoryMiB: 2048,
  maxMemoryMiB: 4096,
  vcpus: 2,
  lifecycle: { onPoweroff: 'destroy', onReboot: 'restart', onCrash: 'coredump-restart' },
  metadata: { 'app.example.com:role': 'frontend' },
  os: {
    type: 'hvm',
    arch: 'x86_64',
    machine: 'q35',
    kernel: '/var/lib/virtkit/boot/vmlinuz',
    initrd: '/var/lib/virtkit/boot/initrd.img',
    cmdline: 'console=ttyS0 root=/dev/vda1',
    bootOrder: ['disk', 'network'],
  },
  devices: {
    disks: [
      { source: '/var/lib/virtkit/images/web-01.qcow2', format: 'qcow2', target: 'vda', bus: 'virtio', bootOrder: 1 },
      { source: '/var/lib/virtkit/iso/seed.iso', target: 'sda', bus: 'sata', readonly: true },
    ],
    interfaces: [
      { type: 'bridge', bridge: 'br0', mac: '52:54:00:12:34:56', model: 'virtio' },
      { type: 'user' },
    ],
    serials: [{ logFile: '/var/log/virtkit/web-01.serial.log' }],
  },
  driver: { qemu: { cpuModel: 'host' } },
};

const container = {
  name: 'ct1',
  memoryMiB: 256,
  vcpus: 1,
  os: {
    type: 'container',
    rootfs: '/var/lib/virtkit/rootfs/ct1',
    init: ['/bin/sh', '-c', 'exec sleep infinity'],
    hostname: 'ct1.example.com',
    env: { PATH: '/usr/bin:/bin', _DEBUG: '1' },
  },
};

describe('ConfigValidator', () => {
  it('accepts a valid hvm config and returns it typed', () => {
    const config: DomainConfig = validator.validate(hvm);
    expect(config).toEqual(hvm);
    expect(config.os.type === 'hvm' && config.os.kernel).toBe('/var/lib/virtkit/boot/vmlinuz');
    expect(config.devices?.disks?.[0]?.format).toBe('qcow2');
  });

  it('accepts a valid container config and applies no defaults', () => {
    const config = validator.validate(container);
    expect(config).toEqual(container);
    if (config.os.type !== 'container') throw new Error('narrowing');
    expect(config.os.rootfs).toBe('/var/lib/virtkit/rootfs/ct1');
    expect(validator.validate({ ...container, os: { type: 'container', rootfs: '/srv/ct' } }).os).toEqual({
      type: 'container',
      rootfs: '/srv/ct',
    });
  });

  it('lists every offending field by JSON pointer', () => {
    const bad = {
      name: 'bad',
      memoryMiB: 0,
      vcpus: '2',
      colour: 'blue',
      devices: {
        disks: [{ sourc: '/images/a.raw' }],
        interfaces: [{ type: 'bridge' }, { type: 'user', mac: '52:54:00:zz:00:01' }],
      },
      os: { type: 'hvm', kernel: 'boot/vmlinuz' },
    };
    const fields = fieldsOf(() => validator.validate(bad));
    expect(pointers(fields)).toEqual([
      '/colour',
      '/devices/disks/0/source',
      '/devices/disks/0/sourc',
      '/devices/interfaces/0/bridge',
      '/devices/interfaces/1/mac',
      '/memoryMiB',
      '/os/kernel',
      '/vcpus',
    ].sort());
    const byPointer = Object.fromEntries(fields.map((f) => [f.pointer, f.message]));
    expect(byPointer).toMatchObject({
      '/memoryMiB': 'must be an integer >= 1',
      '/vcpus': 'must be an integer between 1 and 4096',
      '/colour': 'unknown property "colour"',
      '/devices/disks/0/source': 'missing required property',
      '/devices/disks/0/sourc': 'unknown property "sourc"',
      '/devices/interfaces/0/bridge': 'missing required property',
    });
    expect(byPointer['/os/kernel']).toMatch(/absolute path/);
    expect(byPointer['/devices/interfaces/1/mac']).toMatch(/MAC address/);

    // An unknown os type gives one clean error, not one per oneOf branch.
    const os = fieldsOf(() => validator.validate({ ...container, os: { type: 'paravirt', rootfs: 'x' } }));
    expect(os).toEqual([{ pointer: '/os/type', message: 'must be one of "hvm", "container"' }]);
  });

  it('summarizes the problems in the error message', () => {
    try {
      validator.validate({ name: 'x', memoryMiB: 0, vcpus: 1, os: { type: 'hvm' } });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).toBe('invalid domain config: 1 problem: /memoryMiB: must be an integer >= 1');
    }
  });

  it('checks finer rules: dependencies, paths, names, map keys', () => {
    const fields = fieldsOf(() =>
      validator.validate({
        name: '-bad/name',
        memoryMiB: 1,
        vcpus: 1,
        uuid: 'not-a-uuid',
        metadata: { 'bad key': 'x' },
        os: { type: 'hvm', initrd: '/boot/../etc/shadow', bootOrder: ['disk', 'disk'] },
        driver: { Qemu: {} },
      }),
    );
    expect(fields).toEqual(
      expect.arrayContaining([
        { pointer: '/os/kernel', message: 'missing property required by "initrd"' },
        { pointer: '/os/bootOrder/1', message: 'duplicate of /os/bootOrder/0' },
        { pointer: '/metadata/bad key', message: expect.stringMatching(/^invalid property name: /) },
        { pointer: '/driver/Qemu', message: expect.stringMatching(/^invalid property name: must be a driver name/) },
      ]),
    );
    expect(pointers(fields)).toEqual(
      ['/driver/Qemu', '/metadata/bad key', '/name', '/os/bootOrder/1', '/os/initrd', '/os/kernel', '/uuid'].sort(),
    );
    const missingTag = fieldsOf(() => validator.validate({ ...container, os: { rootfs: '/x' } }));
    expect(missingTag).toEqual([{ pointer: '/os/type', message: 'missing required property' }]);
    expect(pointers(fieldsOf(() => validator.validate(42)))).toEqual(['']);
  });

  it('runs the semantic checks', () => {
    const fields = fieldsOf(() =>
      validator.validate({
        ...hvm,
        maxMemoryMiB: 1024,
        devices: {
          disks: [
            { source: '/a', target: 'vda' },
            { source: '/b', target: 'vdb' },
            { source: '/c', target: 'vda' },
          ],
          interfaces: [
            { type: 'user', mac: '52:54:00:AA:BB:CC' },
            { type: 'user', mac: '52:54:00:aa:bb:cc' },
          ],
        },
      }),
    );
    expect(fields).toEqual([
      { pointer: '/maxMemoryMiB', message: 'must be >= memoryMiB (2048)' },
      { pointer: '/devices/disks/2/target', message: 'duplicate disk target "vda" (also at /devices/disks/0/target)' },
      {
        pointer: '/devices/interfaces/1/mac',
        message: 'duplicate MAC address "52:54:00:aa:bb:cc" (also at /devices/interfaces/0/mac)',
      },
    ]);
  });

  it('validates driver sections with the schemas drivers supply', () => {
    const qemuSchema = {
      type: 'object',
      additionalProperties: false,
      properties: {
        cpuModel: { type: 'string', enum: ['host', 'max'] },
        hugepages: { type: 'boolean' },
      },
    };
    expect(validator.validate(hvm, { qemu: qemuSchema }).driver).toEqual({ qemu: { cpuModel: 'host' } });
    const doc = { ...hvm, driver: { qemu: { cpuModel: 'pentium', hugepage: true }, 'other-driver': { anything: 1 } } };
    const fields = fieldsOf(() => validator.validate(doc, { qemu: qemuSchema, absent: { type: 'object' } }));
    expect(fields).toEqual([
      { pointer: '/driver/qemu/hugepage', message: 'unknown property "hugepage"' },
      { pointer: '/driver/qemu/cpuModel', message: 'must be one of "host", "max"' },
    ]);
    // Without the schema the section is left alone; a broken schema is the driver's fault.
    expect(validator.validate(doc).driver).toEqual(doc.driver);
    expect(() => validator.validate(hvm, { qemu: { type: 'object', bogusKeyword: 1 } })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
  });

  it('exports the schema it validates with', () => {
    expect(domainSchema.$id).toBe('https://virtkit.dev/schema/domain/0.1.json');
    expect(domainSchema.required).toEqual(['name', 'memoryMiB', 'vcpus', 'os']);
  });
});

describe('gen-config-types.mjs', () => {
  const script = join(pkgDir, 'scripts/gen-config-types.mjs');
  const generated = join(pkgDir, 'src/generated/domain-config.ts');
  const tmp = mkdtempSync(join(tmpdir(), 'virtkit-gen-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('--check passes on the committed file', () => {
    const out = execFileSync(process.execPath, [script, '--check'], { cwd: pkgDir, encoding: 'utf8' });
    expect(out).toMatch(/up to date/);
  });

  it('--check fails on a modified copy', () => {
    const copy = join(tmp, 'domain-config.ts');
    copyFileSync(generated, copy);
    expect(spawnSync(process.execPath, [script, '--check', '--out', copy]).status).toBe(0);
    writeFileSync(copy, readFileSync(copy, 'utf8').replace('vcpus: number;', 'vcpus: string;'));
    const r = spawnSync(process.execPath, [script, '--check', '--out', copy], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/out of date/);
  });
});
