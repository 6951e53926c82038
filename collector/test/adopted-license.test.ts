/**
 * adoptedLicense and disagreements: what a farm with `ras.adopt` takes from RAS's license (seats,
 * license kind, expiry) and which configured values RAS contradicts.
 */
import { describe, expect, it } from 'vitest';
import { adoptedLicense, disagreements } from '../src/broker/adopted-license.js';
import { readLicenseBody } from '../src/broker/license-reader.js';
import type { RasLicense } from '../src/broker/license-reader.js';

const utc = (text: string) => Date.parse(text);

describe('adoptedLicense', () => {
  it('takes seats from installedUsers, the kind from type and the expiry at 00:00 UTC of expiryDate', () => {
    const license: RasLicense = { type: 'permanent', installedUsers: 250, expiryDate: '2031-02-21' };
    expect(adoptedLicense(license, {})).toEqual({
      seats: 250,
      license: 'primary',
      expires: utc('2031-02-21T00:00:00Z'),
    });
  });

  it("reads the Licensing Sample's day-first expiry as that calendar day, not the month-first one", () => {
    const license = readLicenseBody({ expiryDate: '03/05/2031', installedUsers: '10', type: 1 });
    expect(adoptedLicense(license, {}).expires).toBe(utc('2031-05-03T00:00:00Z'));
  });

  it('keeps years below 100 as written (no 19xx shift)', () => {
    expect(adoptedLicense({ expiryDate: '0099-12-31' }, {}).expires).toBe(utc('0099-12-31T00:00:00Z'));
  });

  it('PostPaid is SPLA; Permanent, PrePaid and the trials are primary', () => {
    expect(adoptedLicense({ type: 'postpaid' }, {}).license).toBe('spla');
    for (const type of ['permanent', 'prepaid', 'ext-trial', 'legacy-trial', 'normal-trial'] as const) {
      expect(adoptedLicense({ type }, {}).license, type).toBe('primary');
    }
  });

  it('a farm configured sublicense stays one while RAS says a primary kind, and becomes SPLA on PostPaid', () => {
    expect(adoptedLicense({ type: 'permanent' }, { license: 'sublicense' }).license).toBe('sublicense');
    expect(adoptedLicense({ type: 'normal-trial' }, { license: 'sublicense' }).license).toBe('sublicense');
    expect(adoptedLicense({ type: 'postpaid' }, { license: 'sublicense' }).license).toBe('spla');
    expect(adoptedLicense({ type: 'permanent' }, { license: 'spla' }).license).toBe('primary');
  });

  it('adopts nothing RAS did not give: no installedUsers no seats, no or an undocumented type no kind', () => {
    expect(adoptedLicense({}, { seats: 40, license: 'primary', expires: utc('2031-01-01T00:00:00Z') })).toEqual({});
    const undocumented = adoptedLicense({ type: 'undocumented', undocumentedType: 9, usersLicenseInfo: 3 }, {});
    expect(undocumented).toEqual({});
    expect('seats' in adoptedLicense({ type: 'postpaid' }, {})).toBe(false);
  });

  it('0 installed users is 0 seats, not absent', () => {
    expect(adoptedLicense({ installedUsers: 0 }, {})).toEqual({ seats: 0 });
  });
});

describe('disagreements', () => {
  const configured = { seats: 250, license: 'primary' as const, expires: utc('2031-02-21T18:30:00Z') };

  it('none when RAS gives the same values (expiry compared by calendar day)', () => {
    const adopted = adoptedLicense({ type: 'permanent', installedUsers: 250, expiryDate: '2031-02-21' }, configured);
    expect(disagreements(configured, adopted)).toEqual([]);
  });

  it('names each value RAS gives otherwise, with both sides', () => {
    const adopted = adoptedLicense({ type: 'postpaid', installedUsers: 300, expiryDate: '2032-02-21' }, configured);
    expect(disagreements(configured, adopted)).toEqual([
      { field: 'seats', configured: 250, ras: 300 },
      { field: 'license', configured: 'primary', ras: 'spla' },
      { field: 'expires', configured: '2031-02-21', ras: '2032-02-21' },
    ]);
  });

  it('a value only one side gives is no disagreement', () => {
    expect(disagreements({}, { seats: 3, license: 'spla', expires: utc('2031-01-01T00:00:00Z') })).toEqual([]);
    expect(disagreements(configured, {})).toEqual([]);
  });

  it("a sublicense RAS calls primary is no disagreement: RAS's type cannot say sublicense", () => {
    const sub = { ...configured, license: 'sublicense' as const };
    expect(disagreements(sub, adoptedLicense({ type: 'permanent' }, sub))).toEqual([]);
  });

  it('seats 0 against a configured number disagrees', () => {
    expect(disagreements({ seats: 5 }, { seats: 0 })).toEqual([{ field: 'seats', configured: 5, ras: 0 }]);
  });
});
