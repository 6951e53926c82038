import { describe, expect, it } from 'vitest';
import type { PeerCertificate } from 'node:tls';
import { farmIdKey, parseConfig, sha256Hex, type FarmConfig } from '../src/config/config.js';
import { FarmDirectory, peerNames } from '../src/config/farm-directory.js';

const rawFarms = [
  {
    id: 'Farm-A',
    seats: 5,
    license: 'primary',
    expires: '2030-01-01T00:00:00Z',
    agentTokensSha256: [sha256Hex('a')],
    hosts: ['rdsh-*'],
  },
  {
    id: 'farm-b',
    seats: 7,
    license: 'sublicense',
    expires: '2030-01-01T00:00:00Z',
    agentTokensSha256: [sha256Hex('b')],
    countDisconnected: false,
  },
];
const config = parseConfig({ farms: rawFarms }, 'test');

describe('FarmDirectory', () => {
  const farms = new FarmDirectory(config.farms);

  it('finds a farm by id in any case, and only configured farms', () => {
    expect(farms.get('farm-a')?.id).toBe('Farm-A');
    expect(farms.get('FARM-B')?.id).toBe('farm-b');
    expect(farms.get('farm-c')).toBeUndefined();
    expect(farms.ids()).toEqual(['Farm-A', 'farm-b']);
  });

  it('finds the farm a token hash opens', () => {
    expect(farms.byTokenHash(sha256Hex('b'))?.id).toBe('farm-b');
    expect(farms.byTokenHash(sha256Hex('c'))).toBeUndefined();
  });

  it('gives the rules the scripts take', () => {
    expect(farms.rules('farm-b')).toEqual({ id: 'farm-b', seats: 7, countDisconnected: false });
    expect(farms.rules('nope')).toBeUndefined();
  });

  it('allows hosts by the farm patterns, any host when it has none, none for an unknown farm', () => {
    expect(farms.hostAllowed('farm-a', 'RDSH-01')).toBe(true);
    expect(farms.hostAllowed('farm-a', 'gw-01')).toBe(false);
    expect(farms.hostAllowed('farm-b', 'anything')).toBe(true);
    expect(farms.hostAllowed('farm-c', 'rdsh-01')).toBe(false);
  });

  it('compares farm ids by one case rule, the one parseConfig holds ids unique by', () => {
    expect(farmIdKey('Farm-A')).toBe(farmIdKey('farm-a'));
    expect(farmIdKey('farm-a')).not.toBe(farmIdKey('farm-b'));
    expect(() => parseConfig({ farms: [rawFarms[0], { ...rawFarms[1], id: 'FARM-a' }] }, 'test')).toThrow(
      /compared case-insensitively/,
    );
  });
});

describe('host identity', () => {
  const [open, bound] = parseConfig(
    {
      farms: [
        {
          id: 'farm-a',
          seats: 5,
          license: 'primary',
          expires: '2030-01-01T00:00:00Z',
          agentTokensSha256: [sha256Hex('any'), { sha256: sha256Hex('bound'), hosts: ['rdsh-0?'] }],
        },
        {
          id: 'farm-c',
          seats: 5,
          license: 'primary',
          expires: '2030-01-01T00:00:00Z',
          agentTokensSha256: [sha256Hex('cert')],
        },
      ],
    },
    'test',
  ).farms;
  // hostIdentity: certificate needs tls.ca files to parse; the directory takes the farm as parsed.
  const farms = new FarmDirectory([open!, { ...bound!, hostIdentity: 'certificate' }]);

  it('a token with hosts may claim only the names they match, in any case; a plain hash any host', () => {
    expect(farms.hostIdentityRefusal(sha256Hex('bound'), 'RDSH-01', undefined)).toBeUndefined();
    expect(farms.hostIdentityRefusal(sha256Hex('bound'), 'rdsh-10', undefined)).toEqual({
      reason: 'token_hosts',
      message: 'this token may not claim host rdsh-10',
    });
    expect(farms.hostIdentityRefusal(sha256Hex('any'), 'rdsh-10', undefined)).toBeUndefined();
    expect(farms.hostIdentityRefusal(sha256Hex('nope'), 'rdsh-01', undefined)?.reason).toBe('token_hosts');
  });

  it('reads a certificate subject CN and DNS SANs, lower case, and nothing else', () => {
    const peer = peerNames({
      subject: { CN: 'RDSH-07' },
      subjectaltname: 'DNS:rdsh-07.corp.example, IP Address:10.0.0.7, DNS:Alias-7',
    } as PeerCertificate);
    expect([...peer!.names]).toEqual(['rdsh-07', 'rdsh-07.corp.example', 'alias-7']);
    expect(peerNames({} as PeerCertificate)).toBeUndefined();
    expect(peerNames(undefined)).toBeUndefined();
  });

  it('with hostIdentity certificate the host must be one of the certificate names, in any case', () => {
    const peer = peerNames({ subject: { CN: 'rdsh-07' }, subjectaltname: 'DNS:Alias-7' } as PeerCertificate);
    expect(farms.hostIdentityRefusal(sha256Hex('cert'), 'RDSH-07', peer)).toBeUndefined();
    expect(farms.hostIdentityRefusal(sha256Hex('cert'), 'alias-7', peer)).toBeUndefined();
    expect(farms.hostIdentityRefusal(sha256Hex('cert'), 'rdsh-08', peer)).toEqual({
      reason: 'certificate_name',
      message: 'host rdsh-08 is not a name of this client certificate',
    });
    expect(farms.hostIdentityRefusal(sha256Hex('cert'), 'rdsh-07', undefined)?.reason).toBe('certificate_name');
    // A farm without hostIdentity: certificate ignores the certificate.
    expect(farms.hostIdentityRefusal(sha256Hex('any'), 'rdsh-08', peer)).toBeUndefined();
  });
});

describe('FarmDirectory after a reload', () => {
  const [farmA, farmB] = config.farms as [FarmConfig, FarmConfig];
  const before = new FarmDirectory(config.farms);

  it('takes the rules of the new configuration', () => {
    const after = new FarmDirectory([{ ...farmA, seats: 9 }, farmB], before);
    expect(after.rules('Farm-A')?.seats).toBe(9);
    expect(after.releaseRules('Farm-A')?.seats).toBe(9);
    expect(before.rules('Farm-A')?.seats).toBe(5);
  });

  it('refuses a removed farm everything but releasing its hosts under the rules it had', () => {
    const after = new FarmDirectory([farmA], before);
    expect(after.get('farm-b')).toBeUndefined();
    expect(after.rules('farm-b')).toBeUndefined();
    expect(after.byTokenHash(sha256Hex('b'))).toBeUndefined();
    expect(after.hostAllowed('farm-b', 'anything')).toBe(false);
    expect(after.releaseRules('farm-b')).toEqual({ id: 'farm-b', seats: 7, countDisconnected: false });
    // Only the reload that removed it keeps them.
    expect(new FarmDirectory([farmA], after).releaseRules('farm-b')).toBeUndefined();
    // Back in the configuration, it has its new rules.
    expect(new FarmDirectory([farmA, { ...farmB, seats: 8 }], after).releaseRules('farm-b')?.seats).toBe(8);
  });

  it('releases a host claimed under a respelled id under the rules of that spelling', () => {
    // Redis keys are named by the id as written: "farm-a"'s rules would release in another farm's keys.
    const after = new FarmDirectory([{ ...farmA, id: 'farm-a', seats: 9 }, farmB], before);
    expect(after.get('Farm-A')?.id).toBe('farm-a');
    expect(after.releaseRules('Farm-A')).toEqual({ id: 'Farm-A', seats: 5, countDisconnected: true });
    expect(after.releaseRules('farm-a')?.seats).toBe(9);
  });
});
