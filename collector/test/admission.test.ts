/** Admission: the one set of checks a connection passes at its hello and again at every reload. */
import { describe, expect, it } from 'vitest';
import { parseConfig, sha256Hex } from '../src/config/config.js';
import { FarmDirectory } from '../src/config/farm-directory.js';
import { admit, type Credentials } from '../src/ingest/admission.js';

const farm = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  seats: 5,
  license: 'primary',
  expires: '2030-01-01T00:00:00Z',
  agentTokensSha256: [sha256Hex(`token-${id.toLowerCase()}`)],
  ...extra,
});
/** farm-a's tokens: its own, and one bound to the hosts rdsh-0?. */
const tokensOfA = [sha256Hex('token-farm-a'), { sha256: sha256Hex('bound'), hosts: ['rdsh-0?'] }];
const directory = (...farms: Array<Record<string, unknown>>) => new FarmDirectory(parseConfig({ farms }, 'test').farms);

const farms = directory(farm('farm-a', { hosts: ['rdsh-*'], agentTokensSha256: tokensOfA }), farm('farm-b'));
const tokenA: Credentials = { tokenSha256: sha256Hex('token-farm-a'), farmId: 'farm-a', peer: undefined };
const bound: Credentials = { tokenSha256: sha256Hex('bound'), farmId: 'farm-a', peer: undefined };
const hello = (named: string) => ({ kind: 'hello', farm: named }) as const;
const reload = { kind: 'reload' } as const;

describe('admission at a hello', () => {
  it("admits the token's farm, named in any case, and a host it allows", () => {
    expect(admit(farms, tokenA, 'rdsh-1', hello('FARM-A')).farm?.id).toBe('farm-a');
  });

  it("refuses another farm than the token's, a host the farm does not list, a host the token may not claim", () => {
    expect(admit(farms, tokenA, 'rdsh-1', hello('farm-b')).refusal).toEqual({
      reason: 'forbidden',
      message: 'this token is not valid for farm farm-b',
    });
    expect(admit(farms, tokenA, 'web-1', hello('farm-a')).refusal).toEqual({
      reason: 'forbidden',
      message: 'host web-1 is not among the hosts of farm farm-a',
    });
    const identity = admit(farms, bound, 'rdsh-10', hello('farm-a')).refusal;
    expect(identity).toMatchObject({ reason: 'token_hosts', message: 'this token may not claim host rdsh-10' });
    expect(identity?.identity?.reason).toBe('token_hosts');
  });
});

describe('admission at a reload', () => {
  it('keeps a connection whose token, farm and host are still configured', () => {
    expect(admit(farms, tokenA, 'rdsh-1', reload).refusal).toBeUndefined();
    expect(admit(farms, tokenA, undefined, reload).refusal).toBeUndefined();
  });

  it('closes, as revoked, a connection whose token, farm id, host or host identity the reload changed', () => {
    const without = directory(farm('farm-a', { agentTokensSha256: [sha256Hex('other')] }));
    expect(admit(without, tokenA, undefined, reload).refusal).toEqual({
      reason: 'revoked',
      message: 'the token of this connection was revoked',
    });
    expect(admit(directory(farm('farm-b')), tokenA, undefined, reload).refusal?.reason).toBe('revoked');
    const respelled = directory(farm('Farm-A', { hosts: ['rdsh-*'], agentTokensSha256: tokensOfA }));
    expect(admit(respelled, tokenA, 'rdsh-1', reload).refusal).toEqual({
      reason: 'revoked',
      message: 'farm farm-a is now configured as Farm-A',
    });
    const narrower = directory(farm('farm-a', { hosts: ['rdsh-2'], agentTokensSha256: tokensOfA }));
    expect(admit(narrower, tokenA, 'rdsh-1', reload).refusal).toEqual({
      reason: 'revoked',
      message: 'host rdsh-1 is no longer among the hosts of farm farm-a',
    });
    const rebound = directory(
      farm('farm-a', { agentTokensSha256: [{ sha256: sha256Hex('bound'), hosts: ['rdsh-2'] }] }),
    );
    expect(admit(rebound, bound, 'rdsh-1', reload).refusal).toEqual({
      reason: 'revoked',
      message: 'this token may not claim host rdsh-1 (changed by a reload)',
    });
  });
});
