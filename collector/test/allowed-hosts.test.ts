import { describe, expect, it } from 'vitest';
import { AllowedHosts, defaultAllowedHosts, hostOfHeader } from '../src/api/allowed-hosts.js';
import { hostname } from 'node:os';

describe('Host header allow-list', () => {
  it('reads the name of a Host header without port or brackets, and refuses malformed ones', () => {
    expect(hostOfHeader('Rasmon.Corp.Example:9420')).toBe('rasmon.corp.example');
    expect(hostOfHeader('[::1]:9420')).toBe('::1');
    expect(hostOfHeader('rasmon.corp.example.')).toBe('rasmon.corp.example');
    for (const bad of [undefined, '', 'a b', 'x@y', 'host:port', '[::1', 'evil/path'])
      expect(hostOfHeader(bad)).toBeUndefined();
  });

  it('matches names exactly or under a *. suffix, never a longer name ending the same', () => {
    const allowed = new AllowedHosts(['Rasmon.corp.example', '*.lb.corp.example', '[fd00::1]']);
    expect(allowed.allows('rasmon.corp.example')).toBe(true);
    expect(allowed.allows('a.lb.corp.example:443')).toBe(true);
    expect(allowed.allows('[fd00::1]:9420')).toBe(true);
    expect(allowed.allows('lb.corp.example')).toBe(false);
    expect(allowed.allows('xlb.corp.example')).toBe(false);
    expect(allowed.allows('rasmon.corp.example.attacker.example')).toBe(false);
    expect(allowed.allows(undefined)).toBe(false);
  });

  it('defaults to loopback, the machine name and the listen address', () => {
    const names = defaultAllowedHosts('10.1.2.3');
    for (const name of ['localhost', '127.0.0.1', '::1', hostname().toLowerCase(), '10.1.2.3'])
      expect(names).toContain(name);
    expect(defaultAllowedHosts('0.0.0.0')).not.toContain('0.0.0.0');
  });
});
