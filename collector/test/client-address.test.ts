import { describe, expect, it } from 'vitest';
import { ClientAddress } from '../src/ingest/client-address.js';
import { parseRange } from '../src/config/ip-range.js';

describe('the client address behind trusted proxies', () => {
  const address = new ClientAddress(['10.0.0.0/8', 'fd00::/8']);

  it('is the peer itself without proxies, from an untrusted peer, or without the header', () => {
    expect(new ClientAddress([]).of('10.1.1.1', '192.0.2.1')).toBe('10.1.1.1');
    expect(address.of('198.51.100.9', '192.0.2.1')).toBe('198.51.100.9');
    expect(address.of('10.1.1.1', undefined)).toBe('10.1.1.1');
    expect(address.of('::ffff:198.51.100.9', '192.0.2.1')).toBe('198.51.100.9');
  });

  it('is the nearest untrusted hop of X-Forwarded-For from a trusted peer', () => {
    expect(address.of('10.1.1.1', '192.0.2.1')).toBe('192.0.2.1');
    expect(address.of('::ffff:10.1.1.1', '203.0.113.5, 192.0.2.1, 10.2.2.2')).toBe('192.0.2.1');
    expect(address.of('fd00::1', ['203.0.113.5', '2001:db8::7'])).toBe('2001:db8::7');
    // Every hop trusted: the first one.
    expect(address.of('10.1.1.1', '10.3.3.3, 10.2.2.2')).toBe('10.3.3.3');
    // A hop that is not an address: the header is not believed.
    expect(address.of('10.1.1.1', 'unknown, 192.0.2.1')).toBe('192.0.2.1');
    expect(address.of('10.1.1.1', '192.0.2.1, not-an-ip')).toBe('10.1.1.1');
  });

  it('reads ranges and refuses what is not one', () => {
    expect(parseRange('10.0.0.0/8')).toEqual({ network: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseRange('2001:db8::1')).toEqual({ network: '2001:db8::1', prefix: 128, family: 'ipv6' });
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'fd00::/129', 'x', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/1e1'])
      expect(parseRange(bad), bad).toBeUndefined();
  });
});
