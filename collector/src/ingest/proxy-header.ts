/**
 * The PROXY protocol header a TCP load balancer sends before the connection's own bytes, so that
 * the collector sees the agent's address rather than the balancer's (docs/design.md §6). Both
 * versions of HAProxy's specification, https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt:
 * version 1, one text line of at most 107 bytes (§2.1), and version 2, a binary header with a
 * 12-byte signature (§2.2). Only connections from `http.trustedProxies` are read this way, and
 * each must start with a header; the cost of one that does not is bounded (length and time).
 */
import { isIPv4, isIPv6, type Socket } from 'node:net';
import type { ProxyHeaderRefusal } from '../metrics/metrics.js';

export type { ProxyHeaderRefusal };

/** §2.1: "a receiver may reject an incomplete line which does not contain the CRLF sequence in the first 107 characters". */
export const V1_MAX_BYTES = 107;
/** §2.2's 12-byte signature, then version and command, family and protocol, and a 2-byte length. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;
/**
 * Addresses (at most 216 bytes, AF_UNIX) and TLVs: the specification allows 65,535 bytes, balancers
 * send a few dozen (an AWS endpoint id, a GCP connection id). More than this is refused.
 */
export const V2_MAX_BYTES = 2048;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

/**
 * What the header says: `address`, the agent's (source) address; undefined for a LOCAL command
 * (v2, the balancer's own health check), an UNKNOWN (v1) or unspecified (v2) family: the
 * connection's own peer is the client then.
 */
export type ProxyParse =
  | { state: 'more' }
  | { state: 'done'; address: string | undefined; length: number }
  | { state: 'refused'; reason: ProxyHeaderRefusal };

const MORE = { state: 'more' } as const;
const refused = (reason: ProxyHeaderRefusal): ProxyParse => ({ state: 'refused', reason });

/** Whether the bytes so far still agree with the start of `prefix`. */
function agrees(bytes: Buffer, prefix: Buffer): boolean {
  const n = Math.min(bytes.length, prefix.length);
  return bytes.subarray(0, n).equals(prefix.subarray(0, n));
}

/** Parses the header at the start of `bytes`, the bytes received so far. */
export function parseProxyHeader(bytes: Buffer): ProxyParse {
  if (bytes.length === 0) return MORE;
  if (agrees(bytes, V2_SIGNATURE)) return bytes.length < V2_FIXED ? MORE : parseV2(bytes);
  if (agrees(bytes, V1_PREFIX)) return parseV1(bytes);
  return refused('missing');
}

function port(text: string | undefined): boolean {
  // §2.1: a decimal number in 0..65535, without leading zeros.
  return text !== undefined && /^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535;
}

function parseV1(bytes: Buffer): ProxyParse {
  const end = bytes.subarray(0, V1_MAX_BYTES).indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (bytes.length >= V1_MAX_BYTES) return refused('too_long');
    // A line feed or NUL before the CRLF can never become a valid line.
    return bytes.includes(0x0a) || bytes.includes(0x00) ? refused('malformed') : MORE;
  }
  const line = bytes.subarray(0, end).toString('latin1');
  const length = end + 2;
  const fields = line.split(' ');
  // "PROXY UNKNOWN" may be followed by anything; the receiver uses the connection's own addresses.
  if (fields[1] === 'UNKNOWN') return { state: 'done', address: undefined, length };
  if (fields.length !== 6) return refused('malformed');
  const [, family, source, destination, sourcePort, destinationPort] = fields;
  const valid = family === 'TCP4' ? isIPv4 : family === 'TCP6' ? isIPv6 : undefined;
  if (valid === undefined || !valid(source!) || !valid(destination!)) return refused('malformed');
  if (!port(sourcePort) || !port(destinationPort)) return refused('malformed');
  return { state: 'done', address: source, length };
}

/** An IPv6 address from its 16 bytes, in the form node reports (compressed, lower case). */
function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The longest run of two or more zero groups becomes "::" (RFC 5952).
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

function parseV2(bytes: Buffer): ProxyParse {
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return refused('malformed');
  const command = versionCommand & 0x0f;
  if (command > 1) return refused('malformed');
  const familyProtocol = bytes[13]!;
  const addressLength = bytes.readUInt16BE(14);
  const length = V2_FIXED + addressLength;
  if (length > V2_MAX_BYTES) return refused('too_long');
  if (bytes.length < length) return MORE;
  // LOCAL (0x0): the balancer's own connection, a health check; the addresses are ignored.
  if (command === 0) return { state: 'done', address: undefined, length };
  const family = familyProtocol >> 4;
  const protocol = familyProtocol & 0x0f;
  // AF_UNSPEC: "the receiver should ... use the real connection endpoints" (§2.2).
  if (familyProtocol === 0x00) return { state: 'done', address: undefined, length };
  // The agent speaks TCP: only STREAM over AF_INET (12 address bytes) or AF_INET6 (36).
  if (protocol !== 1) return refused('malformed');
  const body = bytes.subarray(V2_FIXED, length);
  if (family === 1 && addressLength >= 12)
    return { state: 'done', address: [...body.subarray(0, 4)].join('.'), length };
  if (family === 2 && addressLength >= 36) return { state: 'done', address: ipv6(body.subarray(0, 16)), length };
  return refused('malformed');
}

/**
 * Reads the header off a new connection before the HTTP (or TLS) server sees any of it. `ready`
 * gets the agent's address (undefined: the connection's own peer) and the bytes received after the
 * header, with the socket paused; `refuse` is called once the socket has been destroyed: no header
 * within `timeoutMs`, too long, or not a header.
 */
export function readProxyHeader(
  socket: Socket,
  timeoutMs: number,
  ready: (address: string | undefined, rest: Buffer) => void,
  refuse: (reason: ProxyHeaderRefusal) => void,
): void {
  let received: Buffer = Buffer.alloc(0);
  const finish = () => {
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.removeListener('close', onClose);
  };
  const fail = (reason: ProxyHeaderRefusal) => {
    finish();
    socket.destroy();
    refuse(reason);
  };
  const onData = (chunk: Buffer) => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const parsed = parseProxyHeader(received);
    if (parsed.state === 'more') return;
    if (parsed.state === 'refused') return fail(parsed.reason);
    finish();
    socket.pause();
    ready(parsed.address, received.subarray(parsed.length));
  };
  const onError = () => {
    finish();
    socket.destroy();
  };
  // Closed before a whole header: nothing to serve and nothing the peer is refused.
  const onClose = () => finish();
  const timer = setTimeout(() => fail('timeout'), timeoutMs);
  timer.unref();
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
}
