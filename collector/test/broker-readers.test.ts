/**
 * The readers of the RAS REST answers on the documents' own samples (docs.parallels.com, RAS REST API
 * guide: "Licensing Sample" and the "RD Sessions" reference's example item), and the field readers'
 * edges: numbers as strings, "" as absent, day-first dates.
 */
import { describe, expect, it } from 'vitest';
import { readLicenseBody } from '../src/broker/license-reader.js';
import { readSessionsBody } from '../src/broker/session-reader.js';
import { FieldError, optionalCount, optionalDayFirstDate, optionalIsoTime } from '../src/broker/ras-fields.js';
import { BrokerError } from '../src/broker/broker-error.js';

/** "Retrieve license details" of the Licensing Sample, as printed (its personal fields shortened). */
const LICENSING_SAMPLE = {
  usageToday: '0',
  currPeriodUsage: '0',
  billingPeriodStart: '03/05/2019 05:30',
  billingPeriodEnd: '02/06/2019 05:30',
  paUserName: 'A Person',
  paCompanyName: 'Parallels',
  paUserEmail: 'someone@parallels.com',
  licenseKey: '****-ME****-****-B9****-CV55K2',
  supportExpireDate: '23/03/2021',
  upgradeInsurance: '23/03/2021',
  licenseFirstActive: '21/02/2018 12:39',
  licenseStatus: '',
  licenseType: 'Parallels Remote Application Server SPLA',
  expiryDate: '21/02/2021',
  installedUsers: '',
  usersPeak: '0',
  usersLicenseInfo: '0',
  gracePeriodState: '',
  gracePeriodDaysLeft: '',
  type: 3,
};

/** The RD Sessions reference's example item, its enums given as the numbers they stand for. */
const RD_SESSION_ITEM = {
  sessionID: 1,
  ip: 'text',
  serverID: 1,
  type: 0,
  user: 'text',
  themeID: 1,
  connectionMode: 0,
  authenticationType: 0,
  idleStartTime: '2025-04-06T01:14:14.612Z',
  protocol: 0,
  state: 0,
  logonTime: '2025-04-06T01:14:14.612Z',
  sessionLength: 1,
  idleTime: 1,
};

describe('readLicenseBody', () => {
  it('reads the Licensing Sample: strings to numbers, "" absent, day-first dates, type 3 PostPaid', () => {
    expect(readLicenseBody(LICENSING_SAMPLE)).toEqual({
      licenseType: 'Parallels Remote Application Server SPLA',
      type: 'postpaid',
      expiryDate: '2021-02-21',
      usersLicenseInfo: 0,
      usersPeak: 0,
      usageToday: 0,
      currPeriodUsage: 0,
      billingPeriodStart: '2019-05-03T05:30',
      billingPeriodEnd: '2019-06-02T05:30',
    });
  });

  it('does not keep the license key or the personal fields', () => {
    const text = JSON.stringify(readLicenseBody(LICENSING_SAMPLE));
    for (const value of ['CV55K2', 'A Person', 'someone@parallels.com']) expect(text).not.toContain(value);
  });

  it('reads the Licensing reference fields: needsAttention, statusMessage, alertMessage, grace days', () => {
    const license = readLicenseBody({
      ...LICENSING_SAMPLE,
      installedUsers: '50',
      gracePeriodState: 'Active',
      gracePeriodDaysLeft: '12',
      needsAttention: true,
      statusMessage: 'Over the licensed users',
      alertMessage: null,
      type: 'NormalTrial',
    });
    expect(license).toMatchObject({
      installedUsers: 50,
      gracePeriodState: 'Active',
      gracePeriodDaysLeft: 12,
      needsAttention: true,
      statusMessage: 'Over the licensed users',
      type: 'normal-trial',
    });
    expect('alertMessage' in license).toBe(false);
  });

  it('names the field in a bad_response', () => {
    try {
      readLicenseBody({ ...LICENSING_SAMPLE, usersPeak: 1.5 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(BrokerError);
      expect(err).toMatchObject({ reason: 'bad_response', field: 'usersPeak' });
      expect((err as Error).message).toBe(
        'GET /api/License: usersPeak must be a whole number written as a string, not 1.5',
      );
    }
  });
});

describe('readSessionsBody', () => {
  it('reads the RD Sessions example item', () => {
    expect(readSessionsBody([RD_SESSION_ITEM])).toEqual({
      sessions: [
        {
          sessionId: 1,
          type: 'desktop',
          typeCode: 0,
          source: 'rds',
          serverId: 1,
          user: 'text',
          ip: 'text',
          state: 'active',
          protocol: 'console',
          logonTime: Date.parse('2025-04-06T01:14:14.612Z'),
        },
      ],
      rejected: [],
      undocumentedTypes: 0,
    });
  });

  it('maps every documented type to its source', () => {
    const sources = Array.from(
      { length: 11 },
      (_, type) => readSessionsBody([{ ...RD_SESSION_ITEM, type }]).sessions[0]!,
    );
    expect(sources.map((s) => `${s.typeCode}=${s.type}:${s.source}`)).toEqual([
      '0=desktop:rds',
      '1=published-apps:rds',
      '2=application:rds',
      '3=vdi:vdi',
      '4=vdi-app:vdi',
      '5=pc:pc',
      '6=pc-app:pc',
      '7=admin:other',
      '8=unknown:other',
      '9=remote-apps:rds',
      '10=direct-rdp:other',
    ]);
  });

  it('keeps sessions whose state or protocol is undocumented, and requires sessionID and type', () => {
    const list = readSessionsBody([
      { ...RD_SESSION_ITEM, state: 77, protocol: 5 },
      { ...RD_SESSION_ITEM, sessionID: undefined },
      { ...RD_SESSION_ITEM, type: null },
    ]);
    expect(list.sessions).toHaveLength(1);
    expect(list.sessions[0]).toMatchObject({ state: 'undocumented', protocol: 'undocumented' });
    expect(list.rejected.map((r) => `${r.field} ${r.problem}`)).toEqual([
      '[1].sessionID is missing',
      '[2].type is missing',
    ]);
  });
});

describe('field readers', () => {
  const read = <T>(reader: (f: Record<string, unknown>, n: string) => T, value: unknown): T | string => {
    try {
      return reader({ f: value }, 'f');
    } catch (err) {
      expect(err).toBeInstanceOf(FieldError);
      return (err as FieldError).problem;
    }
  };

  it('counts: digit strings and whole numbers; "", null and missing are absent', () => {
    expect(read(optionalCount, '0')).toBe(0);
    expect(read(optionalCount, ' 250 ')).toBe(250);
    expect(read(optionalCount, 7)).toBe(7);
    expect(read(optionalCount, '')).toBeUndefined();
    expect(read(optionalCount, null)).toBeUndefined();
    expect(read(optionalCount, undefined)).toBeUndefined();
    for (const bad of ['1e3', '-1', '2.5', 'NaN', true, -1, [], {}])
      expect(read(optionalCount, bad)).toMatch(/^must be a whole number/);
  });

  it('day-first dates: with and without the time, impossible ones refused', () => {
    expect(read(optionalDayFirstDate, '21/02/2021')).toBe('2021-02-21');
    expect(read(optionalDayFirstDate, '29/02/2028')).toBe('2028-02-29');
    expect(read(optionalDayFirstDate, '3/5/2019 5:30')).toBe('2019-05-03T05:30');
    for (const bad of ['29/02/2027', '02/21/2021', '2021-02-21', '21/02/2021 24:00', '21/02/21', 20210221]) {
      expect(read(optionalDayFirstDate, bad)).toMatch(/^must be (a day-first date|a string)/);
    }
  });

  it('ISO times need their zone', () => {
    expect(read(optionalIsoTime, '2025-04-06T01:14:14.612Z')).toBe(Date.parse('2025-04-06T01:14:14.612Z'));
    expect(read(optionalIsoTime, '2025-04-06T03:14:14+02:00')).toBe(Date.parse('2025-04-06T01:14:14Z'));
    expect(read(optionalIsoTime, '2025-04-06T01:14:14')).toMatch(/with a zone/);
  });
});
