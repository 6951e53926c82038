/**
 * The `Host` header allow-list (`http.allowedHosts`, docs/design.md §6): a web page a browser loads
 * from anywhere can point its own DNS name at the collector's address (DNS rebinding) and then read
 * the API and the status page as if it were the collector's own origin. The browser still sends the
 * attacker's name in `Host`, so a request whose Host is not one of the collector's names is refused
 * (421 Misdirected Request). Health checks and /metrics (no user names; load balancers and Prometheus
 * name targets in ways no default can know) and the agents' upgrade (a bearer token a browser page
 * cannot send) are not checked.
 */
import { networkInterfaces, hostname } from 'node:os';

/** The names a collector answers to when `http.allowedHosts` is not set. */
export function defaultAllowedHosts(listenHost: string): string[] {
  const names = new Set<string>(['localhost', '127.0.0.1', '::1']);
  const own = hostname().toLowerCase();
  names.add(own);
  names.add(own.split('.')[0]!);
  if (listenHost !== '0.0.0.0' && listenHost !== '::' && listenHost !== '') names.add(listenHost.toLowerCase());
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) names.add(address.address.toLowerCase().replace(/%.*$/, ''));
  }
  return [...names];
}

/** The host name of a Host header, lower case, without its port or IPv6 brackets; undefined when malformed. */
export function hostOfHeader(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const value = header.trim().toLowerCase();
  const bracketed = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/.exec(value);
  if (bracketed) return bracketed[1];
  const plain = /^([a-z0-9._-]+)(?::\d{1,5})?$/.exec(value);
  return plain?.[1]?.replace(/\.$/, '');
}

export class AllowedHosts {
  private readonly exact = new Set<string>();
  private readonly suffixes: string[] = [];

  /** `patterns`: names or addresses, any case; `*.corp.example` allows every name under it. */
  constructor(patterns: readonly string[]) {
    for (const pattern of patterns) {
      const name = pattern
        .trim()
        .toLowerCase()
        .replace(/^\[|\]$/g, '');
      if (name.startsWith('*.')) this.suffixes.push(name.slice(1));
      else this.exact.add(name);
    }
  }

  /** Whether a request with this Host header may be answered. */
  allows(header: string | undefined): boolean {
    const host = hostOfHeader(header);
    if (host === undefined) return false;
    return this.exact.has(host) || this.suffixes.some((suffix) => host.endsWith(suffix));
  }
}
