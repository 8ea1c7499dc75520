import { describe, expect, it } from 'vitest';
import { connectRemote, nodeUriOf } from '../src/index.js';

describe('connectRemote with DRIVER+unix URIs', () => {
  it('asks for the node without the socket parameter', () => {
    expect(nodeUriOf('test+unix:///default?socket=/run/x.sock')).toBe('test:///default');
    expect(nodeUriOf('test+unix:///default?socket=/run/x.sock&a=b')).toBe('test:///default?a=b');
  });

  it('rejects a host, a relative socket and a missing socket clearly', async () => {
    await expect(connectRemote('test+unix://h/default')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(connectRemote('test+unix:///default?socket=rel.sock')).rejects.toThrow(/socket must be an absolute path/);
    await expect(connectRemote('test+unix:///default?socket=/nonexistent/virtkit.sock')).rejects.toMatchObject({ code: 'IO_ERROR', message: expect.stringMatching(/ENOENT/) });
    await expect(connectRemote('test+tls://h/default')).rejects.toThrow(/needs the ca, cert and key/);
  });
});
