// Roles: which calls an identity may make. Unknown identities may make none.
import { VirtkitError } from '@virtkit/core';
import type { PeerIdentity } from '@virtkit/transport-tls';
import type { IdentityRule, Role } from './config.js';

/** read: look at domains and the node; lifecycle: drive domains; admin: change definitions. */
export type Permission = 'read' | 'lifecycle' | 'admin';

// listJobs shows every client's jobs (domain names, operations), as listDomains shows every
// domain; cancelJob can stop any client's job, whatever its domain: admin (an operator cancels
// its own calls with their signal, the rpc feature 'cancel').
const READ = ['listDomains', 'info', 'getConfig', 'nodeInfo', 'capabilities', 'supports', 'events.subscribe', 'eventsSince', 'listJobs'];
// console: operator-level on the domain (a console can log in, like libvirt's domain.open-console).
// exec is admin: it runs any command as root inside the domain, and a privileged container's
// root is close to the host's root.
const LIFECYCLE = ['start', 'shutdown', 'destroy', 'reboot', 'reset', 'suspend', 'resume', 'console'];

/** The permission a method needs; methods not listed (define, undefine, setAutostart, future ones) need admin. */
export function permissionOf(method: string): Permission {
  if (READ.includes(method)) return 'read';
  if (LIFECYCLE.includes(method)) return 'lifecycle';
  return 'admin';
}

/** The first rule whose every given field matches the peer (cn: subject CN; fingerprint256: case-insensitive). */
export function ruleFor(peer: PeerIdentity, rules: readonly IdentityRule[]): IdentityRule | undefined {
  return rules.find(
    (r) => (r.match.cn === undefined || r.match.cn === peer.subject.CN) && (r.match.fingerprint256 === undefined || r.match.fingerprint256 === peer.fingerprint256.toUpperCase()),
  );
}

export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

/** Describes a peer for messages and logs: its CN and fingerprint, or its unix socket (never anything secret). */
export function describePeer(peer: PeerIdentity): string {
  if (peer.transport === 'unix') return `CN=${peer.subject.CN ?? '?'} (unix socket)`;
  return `${peer.subject.CN ? `CN=${peer.subject.CN}` : 'a client without CN'} (${peer.fingerprint256})`;
}

/**
 * The authorize hook for one peer: throws ACCESS_DENIED naming the permission missing.
 */
export function authorizer(peer: PeerIdentity, rule: IdentityRule | undefined): (method: string, params: readonly unknown[]) => void {
  const role: Role | undefined = rule?.role;
  const domains = rule?.domains ? globToRegExp(rule.domains) : undefined;
  return (method, params) => {
    const needs = permissionOf(method);
    const deny = (why: string) => {
      throw new VirtkitError('ACCESS_DENIED', `access denied: ${method} needs the "${needs}" permission; ${describePeer(peer)} ${why}`);
    };
    if (role === undefined) deny('is not in the access policy');
    if (role === 'admin') return;
    if (needs === 'read') return;
    if (role === 'read-only') deny('has the read-only role');
    if (needs === 'lifecycle') {
      const name = params[0];
      if (domains && (typeof name !== 'string' || !domains.test(name))) deny(`has the operator role only for domains matching ${JSON.stringify(rule!.domains)}`);
      return;
    }
    deny('has the operator role');
  };
}
