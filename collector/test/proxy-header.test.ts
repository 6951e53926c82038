/** The PROXY protocol header's parser (proxy-header.ts), a case for each branch of the specification it reads. */
import { describe, expect, it } from 'vitest';
import { V1_MAX_BYTES, V2_MAX_BYTES, V2_SIGNATURE, parseProxyHeader } from '../src/ingest/proxy-header.js';

const text = (line: string) => Buffer.from(line, 'latin1');

function v2(versionCommand: number, familyProtocol: number, body: Buffer | number[] = []): Buffer {
  const bytes = Buffer.from(body);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length);
  return Buffer.concat([V2_SIGNATURE, Buffer.from([versionCommand, familyProtocol]), length, bytes]);
}

const INET = [192, 0, 2, 1, 127, 0, 0, 1, 0x9c, 0x40, 0x01, 0xbb];
const INET6 = [
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01],
  ...Array.from({ length: 16 }, () => 0),
  ...[0x9c, 0x40, 0x01, 0xbb],
];

describe('parseProxyHeader, version 1', () => {
  it('reads TCP4 and TCP6 lines and says how long the header is', () => {
    const line = 'PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n';
    expect(parseProxyHeader(text(`${line}GET / HTTP/1.1\r\n`))).toEqual({
      state: 'done',
      address: '192.0.2.1',
      length: line.length,
    });
    expect(parseProxyHeader(text('PROXY TCP6 2001:db8::1 ::1 0 65535\r\n'))).toMatchObject({ address: '2001:db8::1' });
  });

  it('takes UNKNOWN, whatever follows, as the connection’s own peer', () => {
    expect(parseProxyHeader(text('PROXY UNKNOWN\r\n'))).toEqual({ state: 'done', address: undefined, length: 15 });
    expect(parseProxyHeader(text('PROXY UNKNOWN ::1 ::1 1 2\r\n'))).toMatchObject({ address: undefined });
  });

  it('waits for more while the bytes can still become a header', () => {
    for (const partial of ['', 'P', 'PROXY', 'PROXY TCP4 192.0.2.1 10.0.0.1 56324 443', 'PROXY TCP4 1\r']) {
      expect(parseProxyHeader(text(partial))).toEqual({ state: 'more' });
    }
  });

  it('refuses a line without CRLF in the first 107 bytes, and one that cannot become a header', () => {
    expect(V1_MAX_BYTES).toBe(107);
    expect(parseProxyHeader(text(`PROXY TCP4 ${'1'.repeat(96)}`))).toEqual({ state: 'refused', reason: 'too_long' });
    expect(parseProxyHeader(text(`PROXY TCP4 ${'1'.repeat(95)}`))).toEqual({ state: 'more' });
    expect(parseProxyHeader(text('PROXY TCP4 1\n'))).toEqual({ state: 'refused', reason: 'malformed' });
    expect(parseProxyHeader(text('PROXY TCP4 1\0'))).toEqual({ state: 'refused', reason: 'malformed' });
  });

  it('refuses a bad family, address, port or field count', () => {
    for (const line of [
      'PROXY UDP4 192.0.2.1 10.0.0.1 1 2',
      'PROXY TCP4 2001:db8::1 10.0.0.1 1 2',
      'PROXY TCP6 192.0.2.1 ::1 1 2',
      'PROXY TCP4 192.0.2.1 10.0.0.300 1 2',
      'PROXY TCP4 192.0.2.1 10.0.0.1 65536 2',
      'PROXY TCP4 192.0.2.1 10.0.0.1 1 012',
      'PROXY TCP4 192.0.2.1 10.0.0.1 -1 2',
      'PROXY TCP4 192.0.2.1 10.0.0.1 1',
      'PROXY TCP4 192.0.2.1 10.0.0.1 1 2 3',
      'PROXY  TCP4 192.0.2.1 10.0.0.1 1 2',
    ]) {
      expect(parseProxyHeader(text(`${line}\r\n`)), line).toEqual({ state: 'refused', reason: 'malformed' });
    }
  });

  it('refuses bytes that are neither version’s start as missing', () => {
    expect(parseProxyHeader(text('GET / HTTP/1.1\r\n'))).toEqual({ state: 'refused', reason: 'missing' });
    expect(parseProxyHeader(text('proxy TCP4'))).toEqual({ state: 'refused', reason: 'missing' });
    expect(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]))).toEqual({ state: 'refused', reason: 'missing' });
  });
});

describe('parseProxyHeader, version 2', () => {
  it('reads PROXY over TCP4 and TCP6, TLVs skipped by the length', () => {
    const tlv = [0x04, 0x00, 0x02, 0xab, 0xcd];
    const inet = v2(0x21, 0x11, [...INET, ...tlv]);
    expect(parseProxyHeader(Buffer.concat([inet, text('GET /')]))).toEqual({
      state: 'done',
      address: '192.0.2.1',
      length: 16 + 12 + tlv.length,
    });
    expect(parseProxyHeader(v2(0x21, 0x21, INET6))).toMatchObject({ address: '2001:db8::1' });
  });

  it('writes IPv6 addresses as node reports them', () => {
    const address = (groups: number[]) => {
      const bytes = Buffer.alloc(36);
      groups.forEach((group, i) => bytes.writeUInt16BE(group, i * 2));
      return (parseProxyHeader(v2(0x21, 0x21, bytes)) as { address: string }).address;
    };
    expect(address([0, 0, 0, 0, 0, 0, 0, 1])).toBe('::1');
    expect(address([0x2001, 0xdb8, 0, 1, 0, 0, 0, 1])).toBe('2001:db8:0:1::1');
    expect(address([0x2001, 0xdb8, 1, 2, 3, 4, 5, 6])).toBe('2001:db8:1:2:3:4:5:6');
    expect(address([0x2001, 0, 0, 1, 0, 0, 0, 0])).toBe('2001:0:0:1::');
    expect(address([0, 0, 0, 0, 0, 0, 0, 0])).toBe('::');
  });

  it("takes LOCAL (a balancer's health check) and AF_UNSPEC as the connection's own peer", () => {
    expect(parseProxyHeader(v2(0x20, 0x00))).toEqual({ state: 'done', address: undefined, length: 16 });
    // LOCAL ignores whatever address block comes with it.
    expect(parseProxyHeader(v2(0x20, 0x11, INET))).toEqual({ state: 'done', address: undefined, length: 28 });
    expect(parseProxyHeader(v2(0x21, 0x00, [1, 2, 3]))).toEqual({ state: 'done', address: undefined, length: 19 });
  });

  it('waits for the fixed part and then for the length it gives', () => {
    expect(parseProxyHeader(V2_SIGNATURE.subarray(0, 5))).toEqual({ state: 'more' });
    expect(parseProxyHeader(V2_SIGNATURE)).toEqual({ state: 'more' });
    expect(parseProxyHeader(v2(0x21, 0x11, INET).subarray(0, 20))).toEqual({ state: 'more' });
  });

  it('refuses a header longer than the bound before it has arrived', () => {
    const head = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0, 0])]);
    head.writeUInt16BE(V2_MAX_BYTES - 16 + 1, 14);
    expect(parseProxyHeader(head)).toEqual({ state: 'refused', reason: 'too_long' });
    head.writeUInt16BE(V2_MAX_BYTES - 16, 14);
    expect(parseProxyHeader(head)).toEqual({ state: 'more' });
  });

  it('refuses another version or command, UDP, AF_UNIX, and an address block too short for its family', () => {
    expect(parseProxyHeader(v2(0x11, 0x11, INET))).toEqual({ state: 'refused', reason: 'malformed' });
    expect(parseProxyHeader(v2(0x22, 0x11, INET))).toEqual({ state: 'refused', reason: 'malformed' });
    expect(parseProxyHeader(v2(0x21, 0x12, INET))).toEqual({ state: 'refused', reason: 'malformed' });
    expect(
      parseProxyHeader(
        v2(
          0x21,
          0x31,
          Array.from({ length: 216 }, () => 0),
        ),
      ),
    ).toEqual({
      state: 'refused',
      reason: 'malformed',
    });
    expect(parseProxyHeader(v2(0x21, 0x11, INET.slice(0, 11)))).toEqual({ state: 'refused', reason: 'malformed' });
    expect(parseProxyHeader(v2(0x21, 0x21, INET6.slice(0, 35)))).toEqual({ state: 'refused', reason: 'malformed' });
    // A signature that goes wrong part way is neither version.
    expect(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0b]))).toEqual({ state: 'refused', reason: 'missing' });
  });
});
