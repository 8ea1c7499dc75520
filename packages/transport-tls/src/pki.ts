// A small PKI for virtkit's mutual TLS: one CA per directory, a server certificate and client
// certificates signed by it. Keys are ECDSA P-256, certificates are made with @peculiar/x509
// over node's WebCrypto. Private keys are written 0600 from the moment the file exists, and
// never printed or logged.
import { createPrivateKey, randomBytes, webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
// @peculiar/x509 resolves its services with tsyringe, which needs the Reflect metadata API:
// the polyfill must be loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
x509.cryptoProvider.set(crypto as any);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** notBefore is set this far in the past, so a peer whose clock is a little behind accepts it. */
const BACKDATE_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

export const CA_CERT_FILE = 'ca-cert.pem';
export const CA_KEY_FILE = 'ca-key.pem';
export const SERVER_CERT_FILE = 'server-cert.pem';
export const SERVER_KEY_FILE = 'server-key.pem';
export const CLIENTS_DIR = 'clients';
export const CRL_FILE = 'crl.pem';

/** A file was invalid, missing or already there, or an argument was bad. */
export class PkiError extends Error {
  override readonly name = 'PkiError';
  constructor(
    readonly code: 'INVALID_ARGUMENT' | 'EXISTS' | 'NO_CA' | 'NOT_FOUND' | 'IO_ERROR',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What was written: the certificate and key paths and the certificate's SHA-256 fingerprint. */
export interface IssuedFiles {
  cert: string;
  key: string;
  /** As node's `X509Certificate.fingerprint256` and `Channel.peer.fingerprint256` show it. */
  fingerprint: string;
}

export interface InitCaOptions {
  commonName?: string;
  days?: number;
}

export interface IssueServerOptions {
  /** Default: the first DNS name, else the first IP address. */
  commonName?: string;
  dnsNames?: string[];
  ips?: string[];
  days?: number;
}

export interface IssueClientOptions {
  commonName: string;
  days?: number;
}

const COMMON_NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
/** The CA's name is only shown to people: spaces are allowed too. */
const CA_COMMON_NAME = /^[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}$/;
const DNS_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

function bad(message: string): PkiError {
  return new PkiError('INVALID_ARGUMENT', message);
}

function checkCommonName(arg: string, v: unknown, re = COMMON_NAME): string {
  if (typeof v !== 'string' || !re.test(v)) {
    throw bad(`${arg} must be 1-64 characters (letters, digits, ${re === CA_COMMON_NAME ? 'space, ' : ''}'_', '.', '@', '-'; starting with a letter or digit), got ${JSON.stringify(v)}`);
  }
  return v;
}

/** RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens. */
export function isDnsName(v: string): boolean {
  if (v.length === 0 || v.length > 253) return false;
  const labels = v.split('.');
  // A purely numeric last label would read as an IP address.
  if (/^\d+$/.test(labels[labels.length - 1]!)) return false;
  return labels.every((l) => DNS_LABEL.test(l));
}

function checkDays(arg: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 36_500) throw bad(`${arg} must be an integer from 1 to 36500, got ${JSON.stringify(v)}`);
  return v;
}

/** 16 random bytes, positive as a DER INTEGER (top bit clear) and without a leading zero byte. */
function serialNumber(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x40;
  return b.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS) };
}

function pem(tag: string, der: ArrayBuffer): string {
  return x509.PemConverter.encode(der, tag) + '\n';
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * Creates `path` with `mode` and writes `text`; fails if it exists. The mode is set by open(2)
 * itself (so a key is never readable by others, not even for a moment), then fchmod'ed in case
 * the umask took bits off a certificate's 0644.
 */
async function writeNew(path: string, text: string, mode: number): Promise<void> {
  let fh;
  try {
    fh = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new PkiError('EXISTS', `${path} already exists; not overwriting it (remove it first to replace it)`, { cause: e });
    throw new PkiError('IO_ERROR', `cannot create ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await fh.chmod(mode);
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(path).catch(() => {});
    throw new PkiError('IO_ERROR', `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
  await fh.close();
}

/** Writes a key (0600) and its certificate (0644); neither may exist yet. */
async function writePair(certPath: string, keyPath: string, cert: x509.X509Certificate, keys: CryptoKeyPair): Promise<IssuedFiles> {
  for (const p of [certPath, keyPath]) {
    if (await exists(p)) throw new PkiError('EXISTS', `${p} already exists; not overwriting it (remove it first to replace it)`);
  }
  const keyPem = pem('PRIVATE KEY', await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const certPem = cert.toString('pem') + '\n';
  await writeNew(keyPath, keyPem, 0o600);
  try {
    await writeNew(certPath, certPem, 0o644);
  } catch (e) {
    await unlink(keyPath).catch(() => {});
    throw e;
  }
  return { cert: certPath, key: keyPath, fingerprint: new NodeX509Certificate(certPem).fingerprint256 };
}

function generateKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

/** Creates the CA of `dir`: ca-key.pem (0600) and a self-signed ca-cert.pem. Refuses to replace one. */
export async function initCa(dir: string, opts: InitCaOptions = {}): Promise<IssuedFiles> {
  const commonName = checkCommonName('commonName', opts.commonName ?? 'virtkit CA', CA_COMMON_NAME);
  const days = checkDays('days', opts.days ?? 3650);
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  for (const p of [certPath, keyPath]) {
    if (await exists(p)) throw new PkiError('EXISTS', `a CA already exists: ${p} is there; not overwriting it`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }],
    ...validity(days),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return writePair(certPath, keyPath, cert, keys);
}

interface Ca {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

async function loadCa(dir: string): Promise<Ca> {
  const certPath = join(dir, CA_CERT_FILE);
  const keyPath = join(dir, CA_KEY_FILE);
  let certPem: string;
  let keyDer: Buffer;
  try {
    certPem = await readFile(certPath, 'utf8');
    const keyPem = await readFile(keyPath, 'utf8');
    keyDer = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new PkiError('NO_CA', `no CA in ${dir}: ${(e as NodeJS.ErrnoException).path ?? certPath} is missing (create one with initCa / virtkit pki init)`, { cause: e });
    // Deliberately not the underlying message: it could quote key material.
    throw new PkiError('IO_ERROR', `cannot load the CA from ${dir} (${(e as NodeJS.ErrnoException).code ?? 'invalid PEM'})`, { cause: e });
  }
  const cert = new x509.X509Certificate(certPem);
  const key = await crypto.subtle.importKey('pkcs8', keyDer, EC, false, ['sign']);
  return { cert, key };
}

async function issue(ca: Ca, commonName: string, days: number, keys: CryptoKeyPair, extensions: x509.Extension[]): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [commonName] }],
    issuer: ca.cert.subjectName,
    ...validity(days),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...extensions,
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
}

/**
 * Issues dir/server-cert.pem and dir/server-key.pem, signed by the CA in `dir`: serverAuth,
 * with the DNS names and IP addresses clients will dial as subjectAltNames.
 */
export async function issueServer(dir: string, opts: IssueServerOptions): Promise<IssuedFiles> {
  const dnsNames = opts.dnsNames ?? [];
  const ips = opts.ips ?? [];
  if (!Array.isArray(dnsNames)) throw bad('dnsNames must be an array of DNS names');
  if (!Array.isArray(ips)) throw bad('ips must be an array of IP addresses');
  for (const n of dnsNames) if (typeof n !== 'string' || !isDnsName(n)) throw bad(`dnsNames: ${JSON.stringify(n)} is not a valid DNS name`);
  for (const ip of ips) if (typeof ip !== 'string' || isIP(ip) === 0) throw bad(`ips: ${JSON.stringify(ip)} is not a valid IP address`);
  if (dnsNames.length + ips.length === 0) throw bad('dnsNames/ips: give at least one DNS name or IP address the server is reached at');
  const commonName = checkCommonName('commonName', opts.commonName ?? dnsNames[0] ?? (COMMON_NAME.test(ips[0]!) ? ips[0]! : 'virtkit-server'));
  const days = checkDays('days', opts.days ?? 825);
  const ca = await loadCa(dir);
  const keys = await generateKeys();
  const cert = await issue(ca, commonName, days, keys, [
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    new x509.SubjectAlternativeNameExtension([...dnsNames.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))], false),
  ]);
  return writePair(join(dir, SERVER_CERT_FILE), join(dir, SERVER_KEY_FILE), cert, keys);
}

/** Issues dir/clients/<commonName>-cert.pem and -key.pem, signed by the CA in `dir`: clientAuth. */
export async function issueClient(dir: string, opts: IssueClientOptions): Promise<IssuedFiles> {
  const commonName = checkCommonName('commonName', opts?.commonName);
  const days = checkDays('days', opts.days ?? 825);
  const ca = await loadCa(dir);
  const keys = await generateKeys();
  const cert = await issue(ca, commonName, days, keys, [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false)]);
  const clients = join(dir, CLIENTS_DIR);
  await mkdir(clients, { recursive: true, mode: 0o700 });
  return writePair(join(clients, `${commonName}-cert.pem`), join(clients, `${commonName}-key.pem`), cert, keys);
}

export interface RevokeResult {
  /** The CRL written (the directory's crl.pem). */
  crl: string;
  /** The revoked certificate's serial number (hex) and SHA-256 fingerprint. */
  serial: string;
  fingerprint: string;
  /** Every serial the CRL now lists. */
  revoked: number;
}

/**
 * Revokes a certificate the directory's CA issued (by default clients/<commonName>-cert.pem):
 * its serial joins the CA-signed revocation list dir/crl.pem, which a TLS server given it
 * (listen's `crl`, virtkitd's `pki.crl`) checks every client certificate against. The CRL is
 * valid until the CA itself expires and is replaced atomically; revoking twice is harmless.
 */
export async function revokeCertificate(dir: string, opts: { commonName?: string; certFile?: string }): Promise<RevokeResult> {
  const certFile = opts.certFile ?? join(dir, CLIENTS_DIR, `${checkCommonName('commonName', opts.commonName)}-cert.pem`);
  const ca = await loadCa(dir);
  let certPem: string;
  try {
    certPem = await readFile(certFile, 'utf8');
  } catch (e) {
    throw new PkiError((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'NOT_FOUND' : 'IO_ERROR', `cannot read the certificate to revoke, ${certFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
  const cert = new x509.X509Certificate(certPem);
  if (cert.issuer !== ca.cert.subject || !(await cert.verify({ publicKey: ca.cert.publicKey, signatureOnly: true }))) {
    throw new PkiError('INVALID_ARGUMENT', `${certFile} was not issued by the CA in ${dir}: a CRL of this CA cannot revoke it`);
  }
  const crlPath = join(dir, CRL_FILE);
  // Each entry says why (privilegeWithdrawn: the operator took the access back).
  const reason = x509.X509CrlReason.privilegeWithdrawn;
  const entries: Array<{ serialNumber: string; revocationDate: Date; reason: x509.X509CrlReason }> = [];
  if (await exists(crlPath)) {
    const old = new x509.X509Crl(await readFile(crlPath, 'utf8'));
    for (const e of old.entries) entries.push({ serialNumber: e.serialNumber, revocationDate: e.revocationDate, reason: e.reason ?? reason });
  }
  if (!entries.some((e) => e.serialNumber.toLowerCase() === cert.serialNumber.toLowerCase())) entries.push({ serialNumber: cert.serialNumber, revocationDate: new Date(), reason });
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(Date.now() - BACKDATE_MS),
    // A CRL past its nextUpdate fails every client: it lasts as long as the CA.
    nextUpdate: ca.cert.notAfter,
    entries,
    signingKey: ca.key,
    signingAlgorithm: SIGNING,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey)],
  });
  const tmp = `${crlPath}.${process.pid}.tmp`;
  await unlink(tmp).catch(() => {});
  // OpenSSL (and so node:tls) reads a CRL only under the 'X509 CRL' PEM label.
  await writeNew(tmp, pem('X509 CRL', crl.rawData), 0o644);
  await rename(tmp, crlPath);
  return { crl: crlPath, serial: cert.serialNumber, fingerprint: new NodeX509Certificate(certPem).fingerprint256, revoked: entries.length };
}

/**
 * Checks a revocation list before a server relies on it: signed by this CA, issued by it, and
 * current (past its thisUpdate, before its nextUpdate). OpenSSL refuses every client against a
 * CRL that is not, with nothing to tell why: a daemon should refuse to start instead.
 */
export async function checkCrl(crlPem: string | Buffer, caPem: string | Buffer, now = new Date()): Promise<void> {
  let crl: x509.X509Crl;
  let ca: x509.X509Certificate;
  try {
    crl = new x509.X509Crl(String(crlPem));
    ca = new x509.X509Certificate(String(caPem));
  } catch (e) {
    throw new PkiError('INVALID_ARGUMENT', `not a revocation list (PEM "X509 CRL") or CA certificate: ${(e as Error).message}`, { cause: e });
  }
  if (crl.issuer !== ca.subject) throw new PkiError('INVALID_ARGUMENT', `the revocation list is issued by "${crl.issuer}", not by the CA "${ca.subject}"`);
  if (!(await crl.verify({ publicKey: ca.publicKey }))) throw new PkiError('INVALID_ARGUMENT', 'the revocation list is not signed by the CA');
  if (crl.thisUpdate.getTime() > now.getTime() + BACKDATE_MS) throw new PkiError('INVALID_ARGUMENT', `the revocation list is not valid before ${crl.thisUpdate.toISOString()}`);
  if (crl.nextUpdate && crl.nextUpdate.getTime() <= now.getTime()) throw new PkiError('INVALID_ARGUMENT', `the revocation list expired on ${crl.nextUpdate.toISOString()} (make a new one: virtkit pki revoke-client)`);
}
