/**
 * IPv4 and IPv6 CIDR matching, for telling RAS gateway connections from direct RDP. Node's
 * `net.BlockList` does the matching: it also matches an IPv4-mapped IPv6 address
 * (`::ffff:10.20.3.4`, as a dual-stack listener reports IPv4 clients) against IPv4 ranges.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  family: 'ipv4' | 'ipv6';
  network: string;
  prefix: number;
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a single address; throws on anything else. */
export function parseCidr(text: string): Cidr {
  const [address = '', prefixText] = text.trim().split('/');
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (family === undefined) throw new Error(`"${text}" is not an IP address or CIDR range`);
  const width = family === 'ipv4' ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > width) throw new Error(`"${text}" has a bad prefix length`);
  return { family, network: address, prefix };
}

const lists = new WeakMap<readonly Cidr[], BlockList>();

/** Whether an address lies in any of the ranges (the ranges are compiled once per list). */
export function inRanges(address: string, ranges: readonly Cidr[]): boolean {
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (family === undefined) return false;
  let list = lists.get(ranges);
  if (!list) {
    list = new BlockList();
    for (const range of ranges) list.addSubnet(range.network, range.prefix, range.family);
    lists.set(ranges, list);
  }
  return list.check(address, family);
}
