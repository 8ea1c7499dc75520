// `virtkit pki init|issue-server|issue-client`: the certificates for mutual TLS, made with
// @virtkit/transport-tls's PKI helper. These verbs open no connection. Key contents are never
// printed: only the files written and the certificate's fingerprint.
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { IssuedFiles } from '@virtkit/transport-tls';
import { integer } from './commands.js';
import type { Session } from './session.js';

/** /etc/virtkit/pki as root, else ~/.config/virtkit/pki. */
export function defaultPkiDir(): string {
  return process.getuid?.() === 0 ? '/etc/virtkit/pki' : join(homedir(), '.config', 'virtkit', 'pki');
}

// Loaded only when a pki verb runs: the x509 library is not needed by the other verbs.
const pki = () => import('@virtkit/transport-tls');

interface Common {
  json?: boolean;
  dir?: string;
  days?: number;
}

export function addPkiVerbs(root: Command, s: Session, json: (o: { json?: boolean }) => boolean, note: (verb: string) => void): void {
  const group = root.command('pki').description('Make the CA, server and client certificates for TLS remote access (opens no connection)');
  const sub = (name: string, description: string) =>
    group
      .command(name)
      .description(description)
      .option('--dir <dir>', `the PKI directory (default: ${defaultPkiDir()})`)
      .option('--days <n>', 'validity in days', integer('--days', 1))
      .option('--json', 'print JSON (as the global --json does)');

  const report = (opts: Common, what: string, r: IssuedFiles) => {
    if (json(opts)) {
      s.printJson({ files: { cert: r.cert, key: r.key }, fingerprint: r.fingerprint });
      return;
    }
    s.info(`${what} certificate: ${r.cert}\n${what} key (mode 0600): ${r.key}\nSHA-256 fingerprint: ${r.fingerprint}`);
  };

  sub('init', 'Create the CA: ca-cert.pem and ca-key.pem (refuses to replace an existing CA)')
    .option('--cn <name>', "the CA's common name (default: virtkit CA)")
    .action(async (opts: Common & { cn?: string }) => {
      note('pki init');
      const { initCa } = await pki();
      const r = await initCa(opts.dir ?? defaultPkiDir(), { ...(opts.cn !== undefined ? { commonName: opts.cn } : {}), ...(opts.days !== undefined ? { days: opts.days } : {}) });
      report(opts, 'CA', r);
    });

  sub('issue-server', "Issue server-cert.pem and server-key.pem, signed by the directory's CA")
    .option('--dns <name...>', 'DNS names clients dial the server by (subjectAltName)')
    .option('--ip <address...>', 'IP addresses clients dial the server at (subjectAltName)')
    .option('--cn <name>', 'the common name (default: the first DNS name, else the first IP)')
    .action(async (opts: Common & { dns?: string[]; ip?: string[]; cn?: string }) => {
      note('pki issue-server');
      const { issueServer } = await pki();
      const r = await issueServer(opts.dir ?? defaultPkiDir(), {
        dnsNames: opts.dns ?? [],
        ips: opts.ip ?? [],
        ...(opts.cn !== undefined ? { commonName: opts.cn } : {}),
        ...(opts.days !== undefined ? { days: opts.days } : {}),
      });
      report(opts, 'Server', r);
    });

  group
    .command('revoke-client')
    .description("Revoke a client certificate: add it to the directory's crl.pem, which virtkitd checks clients against (restart it to load the new list)")
    .argument('<cn>', "the client's common name (clients/CN-cert.pem)")
    .option('--dir <dir>', `the PKI directory (default: ${defaultPkiDir()})`)
    .option('--json', 'print JSON (as the global --json does)')
    .action(async (cn: string, opts: Common) => {
      note('pki revoke-client');
      const { revokeCertificate } = await pki();
      const r = await revokeCertificate(opts.dir ?? defaultPkiDir(), { commonName: cn });
      if (json(opts)) s.printJson(r);
      else s.info(`Revoked ${cn} (serial ${r.serial}, SHA-256 fingerprint ${r.fingerprint})\nRevocation list: ${r.crl} (${r.revoked} revoked); restart virtkitd to load it`);
    });

  sub('issue-client', "Issue clients/CN-cert.pem and clients/CN-key.pem, signed by the directory's CA")
    .argument('<cn>', "the client's common name (what the server sees as its identity)")
    .action(async (cn: string, opts: Common) => {
      note('pki issue-client');
      const { issueClient } = await pki();
      const r = await issueClient(opts.dir ?? defaultPkiDir(), { commonName: cn, ...(opts.days !== undefined ? { days: opts.days } : {}) });
      report(opts, 'Client', r);
    });
}
