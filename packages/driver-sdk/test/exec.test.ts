// The SDK's exec helpers (world 0.2.0), in-process: base64 by hand (the QuickJS guest has no
// Buffer, btoa or TextEncoder) must agree with Node's, and the plugin-test fake commands.
import { describe, expect, it } from 'vitest';
import { decodeBase64, encodeBase64, execArgs, execResult, DriverError } from '@virtkit/driver-sdk/guest';
import { runOperation } from '@virtkit/driver-sdk/testing';
import { driver } from '../../plugin-test/src/driver.js';

describe('exec helpers', () => {
  it('base64 agrees with Node for every length and byte value', () => {
    for (let n = 0; n < 70; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) % 256);
      const b64 = encodeBase64(bytes);
      expect(b64).toBe(Buffer.from(bytes).toString('base64'));
      expect(Buffer.from(decodeBase64(b64)).equals(Buffer.from(bytes))).toBe(true);
    }
    expect(() => decodeBase64('a$==')).toThrow(DriverError);
  });

  it('decodes exec args and encodes the result payload', () => {
    expect(execArgs({ argv: ['cat'], stdin: Buffer.from('hi').toString('base64'), env: { A: '1' }, timeoutMs: 5 })).toEqual({ argv: ['cat'], env: { A: '1' }, cwd: undefined, stdin: new Uint8Array([104, 105]), timeoutMs: 5 });
    expect(() => execArgs({ argv: [] })).toThrow('argv must be a non-empty array of strings');
    expect(execResult({ code: 3, stdout: 'é', stderr: new Uint8Array([0, 255]), truncated: true })).toEqual({ exitCode: 3, signal: null, stdout: 'w6k=', stderr: 'AP8=', truncated: true });
  });

  it('plugin-test fakes a command set', () => {
    const exec = (args: object) => JSON.parse(runOperation(driver, { kind: 'exec', domain: 'd', args: JSON.stringify(args) }, () => ({ tag: 'none' })).payload!);
    expect(exec({ argv: ['echo', 'a', 'b'] })).toEqual({ exitCode: 0, signal: null, stdout: Buffer.from('a b\n').toString('base64'), stderr: '', truncated: false });
    expect(exec({ argv: ['exit', '7'] }).exitCode).toBe(7);
    expect(exec({ argv: ['exit', '300'] }).exitCode).toBe(2);
    expect(exec({ argv: ['kill', 'HUP'] })).toMatchObject({ exitCode: null, signal: 'SIGHUP' });
  });
});
