/** An IP address range as `http.trustedProxies` lists them. */
import { isIPv4, isIPv6 } from 'node:net';

export interface IpRange {
  network: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses `10.0.0.0/8`, `fd00::/8` or one address; undefined for anything else. */
export function parseRange(text: string): IpRange | undefined {
  const [address = '', prefixText] = text.trim().split('/');
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (family === undefined) return undefined;
  const width = family === 'ipv4' ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (prefix > width) return undefined;
  return { network: address, prefix, family };
}
