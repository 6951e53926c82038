/**
 * A farm's `ras:` block: its keys checked with errors naming the key, the password read from
 * passwordFile at load time and kept out of every written form of the configuration.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, configHash, parseConfig, sha256Hex } from '../src/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'rasmon-ras-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PASSWORD = 'pa55-Wörd with spaces';
const passwordFile = join(dir, 'ras-password');
writeFileSync(passwordFile, `${PASSWORD}\n`);

function withRas(ras: Record<string, unknown> | undefined): Record<string, unknown> {
  return {
    farms: [
      {
        id: 'farm-a',
        seats: 250,
        license: 'primary',
        expires: '2030-01-01T00:00:00Z',
        agentTokensSha256: [sha256Hex('token-a')],
        ...(ras === undefined ? {} : { ras }),
      },
    ],
  };
}

const BASE = { url: 'https://ras-broker.corp.example:20443', username: 'CORP\\svc-rasmon', passwordFile };

function parse(ras: Record<string, unknown>) {
  return parseConfig(withRas(ras), 'test');
}

function errorOf(ras: Record<string, unknown>): string {
  try {
    parse(ras);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('farms[].ras', () => {
  it('applies the defaults: pollSeconds 60, sessions vdi, pc and avd, adopt off', () => {
    const ras = parse(BASE).farms[0]!.ras!;
    expect(ras).toMatchObject({ ...BASE, pollSeconds: 60, sessions: ['vdi', 'pc', 'avd'], adopt: false });
    expect(ras.ca).toBeUndefined();
  });

  it('takes the block of the documented example, and an empty sessions list', () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, 'not checked for PEM at load\n');
    const ras = parse({ ...BASE, ca, pollSeconds: 10, sessions: [], adopt: true }).farms[0]!.ras!;
    expect(ras).toMatchObject({ ca, pollSeconds: 10, sessions: [], adopt: true });
    expect(parse({ ...BASE, pollSeconds: 3600, sessions: ['pc', 'pc'] }).farms[0]!.ras!.sessions).toEqual(['pc']);
  });

  it('reads the password from passwordFile, without its last line break', () => {
    const ras = parse(BASE).farms[0]!.ras!;
    expect(ras.password?.reveal()).toBe(PASSWORD);
  });

  it('keeps the password out of JSON, inspect, String and the configuration hash', () => {
    const config = parse(BASE);
    expect(JSON.stringify(config)).not.toContain(PASSWORD);
    expect(JSON.stringify(config)).toContain('[redacted]');
    expect(inspect(config, { depth: 10 })).not.toContain(PASSWORD);
    expect(String(config.farms[0]!.ras!.password)).toBe('[redacted]');
    const other = join(dir, 'other-password');
    writeFileSync(other, 'another one');
    const withOther = parseConfig(withRas({ ...BASE, passwordFile: other }), 'test');
    // Only the file's name enters the hash: a rotated password is no new configuration.
    writeFileSync(other, PASSWORD);
    expect(configHash(parseConfig(withRas({ ...BASE, passwordFile: other }), 'test'))).toBe(configHash(withOther));
  });

  it('refuses a password written in the configuration', () => {
    expect(errorOf({ ...BASE, password: PASSWORD })).toMatch(
      /^farms\[0\]\.ras\.password: must not be in the configuration: write the password to a file/,
    );
    expect(errorOf({ ...BASE, password: PASSWORD })).not.toContain(PASSWORD);
  });

  it('refuses a missing, unreadable or empty password file, naming the key and the file', () => {
    expect(errorOf({ ...BASE, passwordFile: join(dir, 'nope') })).toMatch(
      /^farms\[0\]\.ras\.passwordFile: file .*nope not found \(in test\)$/,
    );
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    expect(errorOf({ ...BASE, passwordFile: empty })).toMatch(/^farms\[0\]\.ras\.passwordFile: file .*empty is empty/);
    expect(errorOf({ ...BASE, passwordFile: dir })).toMatch(/^farms\[0\]\.ras\.passwordFile: .* is not a regular file/);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked');
      writeFileSync(locked, 'secret');
      chmodSync(locked, 0o000);
      expect(errorOf({ ...BASE, passwordFile: locked })).toMatch(
        /^farms\[0\]\.ras\.passwordFile: file .*locked is not readable/,
      );
    }
  });

  it('refuses a ca file that does not exist', () => {
    expect(errorOf({ ...BASE, ca: join(dir, 'missing-ca.pem') })).toMatch(/^farms\[0\]\.ras\.ca: file .* not found/);
  });

  it.each([
    [{ url: 'http://ras:20443' }, /^farms\[0\]\.ras\.url: must be the https:\/\/ URL of the RAS REST API/],
    [{ url: 'https://user:pw@ras:20443' }, /^farms\[0\]\.ras\.url: must be the https:\/\//],
    [
      { url: 'https://ras:20443/api/' },
      /^farms\[0\]\.ras\.url: must be the https:\/\/ URL of the RAS REST API without \/api/,
    ],
    [{ url: 42 }, /^farms\[0\]\.ras\.url: must be the https:\/\//],
    [{ username: '  ' }, /^farms\[0\]\.ras\.username: must not be empty/],
    [{ pollSeconds: 9 }, /^farms\[0\]\.ras\.pollSeconds: must be an integer from 10 to 3600/],
    [{ pollSeconds: 3601 }, /^farms\[0\]\.ras\.pollSeconds: must be an integer from 10 to 3600/],
    [{ sessions: ['rds'] }, /^farms\[0\]\.ras\.sessions\[0\]: must be "vdi", "pc" or "avd"/],
    [{ sessions: 'vdi' }, /^farms\[0\]\.ras\.sessions: must be a list/],
    [{ adopt: 'yes' }, /^farms\[0\]\.ras\.adopt: must be true or false/],
    [{ verify: false }, /^farms\[0\]\.ras/],
  ])('refuses %o naming the key', (change, message) => {
    expect(errorOf({ ...BASE, ...change })).toMatch(message);
  });

  it('requires url, username and passwordFile', () => {
    for (const key of ['url', 'username', 'passwordFile'] as const) {
      const ras: Record<string, unknown> = { ...BASE };
      delete ras[key];
      expect(errorOf(ras)).toMatch(new RegExp(`^farms\\[0\\]\\.ras\\.${key}: `));
    }
  });

  it('leaves seats, license and expires optional with adopt, and required without it', () => {
    const adopting = withRas({ ...BASE, adopt: true });
    const farm = (adopting.farms as Record<string, unknown>[])[0]!;
    for (const key of ['seats', 'license', 'expires']) delete farm[key];
    const parsed = parseConfig(adopting, 'test').farms[0]!;
    expect([parsed.seats, parsed.license, parsed.expires]).toEqual([undefined, undefined, undefined]);
    for (const key of ['license', 'expires']) {
      const raw = withRas({ ...BASE, adopt: false });
      delete (raw.farms as Record<string, unknown>[])[0]![key];
      expect(() => parseConfig(raw, 'test')).toThrow(
        new RegExp(`^farms\\[0\\]\\.${key}: is required \\(unless ras.adopt takes it from RAS\\)`),
      );
    }
  });

  it('reads upnDomains with suffixes in lower case, and refuses a malformed one naming the key', () => {
    const raw = withRas({ ...BASE, upnDomains: { 'Corp.Example': 'CORP' } });
    expect(parseConfig(raw, 'test').farms[0]!.ras!.upnDomains).toEqual({ 'corp.example': 'CORP' });
    expect(() => parseConfig(withRas({ ...BASE, upnDomains: { 'corp example': 'CORP' } }), 'test')).toThrow(
      /^farms\[0\]\.ras\.upnDomains\.corp example: must map UPN suffixes \(DNS suffixes/,
    );
    expect(() =>
      parseConfig(withRas({ ...BASE, upnDomains: { 'corp.example': 'A DOMAIN NAME TOO LONG' } }), 'test'),
    ).toThrow(/^farms\[0\]\.ras\.upnDomains\.corp\.example: must be a NetBIOS domain/);
  });
});
