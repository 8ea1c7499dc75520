// libvirt-style connection URIs: driver[+transport]://[host[:port]]/path[?query]
// e.g. test:///default, test:///abs/node.json, qemu:///system, qemu+tls://host:16514/system
import { VirtkitError } from '../errors.js';

export interface ParsedUri {
  uri: string;
  /** The driver part: test, qemu, lxc, xen, ... */
  driver: string;
  /** The transport part after '+', if any (tls, unix, ...). */
  transport?: string;
  host?: string;
  port?: number;
  /** The path, e.g. /system, /session, /default. */
  path: string;
  params: Record<string, string>;
}

export function parseUri(uri: string): ParsedUri {
  const m = /^([a-z][a-z0-9-]*)(?:\+([a-z][a-z0-9-]*))?:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/.exec(uri);
  if (!m) {
    throw new VirtkitError('INVALID_ARGUMENT', `uri ${JSON.stringify(uri)} is not a connection URI like test:///default or qemu:///system`);
  }
  const [, driver, transport, authority, path, query] = m;
  let host: string | undefined;
  let port: number | undefined;
  if (authority) {
    const hp = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(authority);
    if (!hp) throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: bad host ${JSON.stringify(authority)}`);
    host = hp[1]!.replace(/^\[|\]$/g, '');
    if (hp[2]) {
      port = Number(hp[2]);
      if (port < 1 || port > 65535) throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: port ${hp[2]} out of range`);
    }
  }
  const decodedPath = decodeURIComponent(path ?? '/');
  if (decodedPath.includes('\0') || decodedPath.split('/').includes('..')) {
    throw new VirtkitError('INVALID_ARGUMENT', `uri ${uri}: path must not contain '..' or NUL`);
  }
  return { uri, driver: driver!, transport, host, port, path: decodedPath, params: Object.fromEntries(new URLSearchParams(query ?? '')) };
}
