// The BUILT virtkit command's pki verbs, run in a temp dir. Run `pnpm build` first.
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'virtkit.js');
const dir = mkdtempSync(join(tmpdir(), 'virtkit-cli-pki-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function virtkit(...args: string[]) {
  // HOME points into the temp dir so a missing --dir could never touch the real one.
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', env: { ...process.env, HOME: dir } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const mode = (p: string) => statSync(join(dir, p)).mode & 0o777;

describe('virtkit pki', () => {
  it('init writes the CA and names the files, never the key', () => {
    const r = virtkit('pki', 'init', '--dir', 'pki');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('pki/ca-cert.pem');
    expect(r.stdout).toContain('pki/ca-key.pem');
    expect(r.stdout).not.toContain('PRIVATE KEY');
    expect(mode('pki/ca-cert.pem')).toBe(0o644);
    expect(mode('pki/ca-key.pem')).toBe(0o600);
  });

  it('init refuses to replace the CA', () => {
    const r = virtkit('pki', 'init', '--dir', 'pki');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ca-cert\.pem/);
  });

  it('issue-server --json prints the files and the fingerprint', () => {
    const r = virtkit('pki', 'issue-server', '--dns', 'localhost', 'node1.example', '--ip', '127.0.0.1', '--dir', 'pki', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { files: { cert: string; key: string }; fingerprint: string };
    expect(out.files).toEqual({ cert: join('pki', 'server-cert.pem'), key: join('pki', 'server-key.pem') });
    const cert = new X509Certificate(readFileSync(join(dir, out.files.cert)));
    expect(out.fingerprint).toBe(cert.fingerprint256);
    expect(cert.subjectAltName).toBe('DNS:localhost, DNS:node1.example, IP Address:127.0.0.1');
    expect(mode('pki/server-key.pem')).toBe(0o600);
    expect(mode('pki/server-cert.pem')).toBe(0o644);
  });

  it('issue-client writes clients/CN-cert.pem and -key.pem that verify against the CA', () => {
    const r = virtkit('--json', 'pki', 'issue-client', 'alice', '--dir', 'pki');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).files.key).toBe(join('pki', 'clients', 'alice-key.pem'));
    expect(mode('pki/clients/alice-key.pem')).toBe(0o600);
    expect(mode('pki/clients/alice-cert.pem')).toBe(0o644);
    execFileSync('openssl', ['verify', '-CAfile', join(dir, 'pki/ca-cert.pem'), '-purpose', 'sslclient', join(dir, 'pki/clients/alice-cert.pem')]);
  });

  it('rejects bad names, naming the argument', () => {
    const r = virtkit('pki', 'issue-client', '../x', '--dir', 'pki');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/commonName/);
    const s = virtkit('pki', 'issue-server', '--ip', 'not-an-ip', '--dir', 'pki2');
    expect(s.code).toBe(1);
    expect(s.stderr).toMatch(/ips/);
  });

  it('defaults to ~/.config/virtkit/pki when not root', () => {
    if (process.getuid?.() === 0) return; // root: /etc/virtkit/pki, not touched by a test
    const r = virtkit('pki', 'init', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).files.cert).toBe(join(dir, '.config', 'virtkit', 'pki', 'ca-cert.pem'));
  });
});
