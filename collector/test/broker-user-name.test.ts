/**
 * brokerUserName: a broker's spelling of a user put in the agents' `DOMAIN\user` form, so that one
 * person compares equal from both sides once normalizeUser has run (docs/design.md §2 rule 4).
 */
import { describe, expect, it } from 'vitest';
import { normalizeUser } from '@rasmon/protocol';
import { brokerUserName } from '../src/broker/user-name.js';

const DOMAINS = { 'corp.example': 'CORP', 'eu.corp.example': 'CORPEU' };

describe('brokerUserName', () => {
  it('maps a UPN whose suffix is listed to DOMAIN\\user, the suffix in any case', () => {
    expect(brokerUserName('alice@corp.example', DOMAINS)).toEqual({ name: 'CORP\\alice', unmappedUpn: false });
    expect(brokerUserName('Alice@CORP.Example', DOMAINS)).toEqual({ name: 'CORP\\Alice', unmappedUpn: false });
  });

  it("compares equal with the agent's spelling of the same person after normalizeUser", () => {
    for (const spelt of ['alice@corp.example', 'ALICE@Corp.Example', ' alice@corp.example ', 'corp\\ALICE']) {
      expect(normalizeUser(brokerUserName(spelt, DOMAINS).name), spelt).toBe(normalizeUser('CORP\\Alice'));
    }
  });

  it('maps a subdomain only through its own entry', () => {
    expect(brokerUserName('bob@eu.corp.example', DOMAINS).name).toBe('CORPEU\\bob');
    expect(brokerUserName('bob@us.corp.example', DOMAINS)).toEqual({
      name: 'bob@us.corp.example',
      unmappedUpn: true,
    });
  });

  it('keeps a UPN with an unmapped suffix as spelt and says so', () => {
    expect(brokerUserName(' eve@partner.example ', DOMAINS)).toEqual({
      name: 'eve@partner.example',
      unmappedUpn: true,
    });
    expect(brokerUserName('eve@corp.example', {})).toEqual({ name: 'eve@corp.example', unmappedUpn: true });
  });

  it('keeps DOMAIN\\user as it is (trimmed), also with an @ in it', () => {
    expect(brokerUserName('  CORP\\carol ', DOMAINS)).toEqual({ name: 'CORP\\carol', unmappedUpn: false });
    expect(brokerUserName('CORP\\carol@corp.example', DOMAINS)).toEqual({
      name: 'CORP\\carol@corp.example',
      unmappedUpn: false,
    });
  });

  it('keeps a bare name, and an @ at either end, without calling it a UPN', () => {
    expect(brokerUserName('dave', DOMAINS)).toEqual({ name: 'dave', unmappedUpn: false });
    expect(brokerUserName('@corp.example', DOMAINS)).toEqual({ name: '@corp.example', unmappedUpn: false });
    expect(brokerUserName('dave@', DOMAINS)).toEqual({ name: 'dave@', unmappedUpn: false });
  });

  it('splits at the last @: the suffix is what follows it', () => {
    expect(brokerUserName('first.last@old@corp.example', DOMAINS).name).toBe('CORP\\first.last@old');
  });

  it('does not take a suffix from the mapping object itself', () => {
    for (const suffix of ['constructor', '__proto__']) {
      expect(brokerUserName(`frank@${suffix}`, DOMAINS), suffix).toEqual({
        name: `frank@${suffix}`,
        unmappedUpn: true,
      });
    }
  });
});
