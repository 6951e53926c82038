/**
 * The address an agent connects from, as the per-address upgrade limits count it (docs/design.md §6).
 * Behind a load balancer every agent arrives from the balancer's address, and 10,000 agents coming
 * back after a restart would wait out one address's limit. A balancer listed in
 * `http.trustedProxies` says who it forwards for in `X-Forwarded-For`: the client is the nearest
 * address in that list not itself a trusted proxy. From any other peer the header is ignored (anyone
 * can write one).
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { parseRange } from '../config/ip-range.js';

/** An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, as a dual-stack listener reports IPv4) as IPv4. */
function plain(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

export class ClientAddress {
  private readonly trusted = new BlockList();
  private readonly any: boolean;

  /** `ranges` were checked by the configuration (parseRange). */
  constructor(ranges: readonly string[]) {
    for (const text of ranges) {
      const range = parseRange(text)!;
      this.trusted.addSubnet(range.network, range.prefix, range.family);
    }
    this.any = ranges.length > 0;
  }

  /** Whether `address` (a TCP peer or a hop) is one of `http.trustedProxies`. */
  isTrusted(address: string): boolean {
    address = plain(address);
    const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
    return family !== undefined && this.trusted.check(address, family);
  }

  /** The client of a request from `peer` with these `X-Forwarded-For` headers. */
  of(peer: string | undefined, forwardedFor: string | string[] | undefined): string {
    const direct = plain(peer ?? '');
    if (!this.any || forwardedFor === undefined || !this.isTrusted(direct)) return direct;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
      .split(',')
      .map((hop) => plain(hop.trim()));
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (!isIPv4(hop) && !isIPv6(hop)) return direct;
      if (!this.isTrusted(hop)) return hop;
    }
    return hops[0] ?? direct;
  }
}
