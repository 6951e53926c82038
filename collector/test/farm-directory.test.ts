import { describe, expect, it } from 'vitest';
import { parseConfig, sha256Hex } from '../src/config.js';
import { FarmDirectory } from '../src/farm-directory.js';

const config = parseConfig(
  {
    farms: [
      { id: 'Farm-A', seats: 5, license: 'primary', expires: '2030-01-01T00:00:00Z', agentTokensSha256: [sha256Hex('a')], hosts: ['rdsh-*'] },
      { id: 'farm-b', seats: 7, license: 'sublicense', expires: '2030-01-01T00:00:00Z', agentTokensSha256: [sha256Hex('b')], countDisconnected: false },
    ],
  },
  'test',
);

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
});
