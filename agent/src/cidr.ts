/** IPv4 and IPv6 CIDR matching, for telling RAS gateway connections from direct RDP. */
import { isIPv4, isIPv6 } from 'node:net';

function ipv4Bits(address: string): bigint {
  return address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function ipv6Bits(address: string): bigint {
  let text = address.toLowerCase();
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const bits = ipv4Bits(v4[1]!);
    text = text.slice(0, -v4[1]!.length) + `${(bits >> 16n).toString(16)}:${(bits & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? headGroups : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return groups.reduce((acc, group) => (acc << 16n) | BigInt(parseInt(group || '0', 16)), 0n);
}

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

/** Parses `10.0.0.0/8`, `fd00::/8` or a single address; throws on anything else. */
export function parseCidr(text: string): Cidr {
  const [address = '', prefixText] = text.trim().split('/');
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0;
  if (family === 0) throw new Error(`"${text}" is not an IP address or CIDR range`);
  const width = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > width) throw new Error(`"${text}" has a bad prefix length`);
  const bits = family === 4 ? ipv4Bits(address) : ipv6Bits(address);
  const shift = BigInt(width - prefix);
  return { family, base: (bits >> shift) << shift, prefix };
}

/** Whether an address lies in any of the ranges. */
export function inRanges(address: string, ranges: readonly Cidr[]): boolean {
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0;
  if (family === 0) return false;
  const bits = family === 4 ? ipv4Bits(address) : ipv6Bits(address);
  const width = family === 4 ? 32 : 128;
  return ranges.some((range) => {
    if (range.family !== family) return false;
    const shift = BigInt(width - range.prefix);
    return (bits >> shift) << shift === range.base;
  });
}
