// quser prints the host's local time; the tests read it as UTC so the expected values are fixed.
process.env.TZ = 'UTC';

import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseLogonTime, parseQuery, QueryOutputError } from '../src/windows/quser-parser.js';
import type { RawSession, RawState } from '../src/windows/raw-session.js';

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const utc = (y: number, m: number, d: number, h: number, min: number): number => Date.UTC(y, m - 1, d, h, min);

describe('parseQuery on real and derived outputs', () => {
  it('reads English quser: a disconnected row has an empty session name, > is stripped, AM/PM times', () => {
    expect(parseQuery(fixture('quser-en-disconnected.txt'))).toEqual<RawSession[]>([
      {
        sessionId: 2,
        user: 'admin.xxxxxxxx',
        state: 'disconnected',
        sessionName: '',
        logonTime: utc(2017, 7, 20, 13, 19),
      },
      {
        sessionId: 3,
        user: 'admin.xxxxx',
        state: 'active',
        sessionName: 'rdp-tcp#54',
        logonTime: utc(2017, 7, 21, 5, 35),
      },
      { sessionId: 5, user: 'vertigoray', state: 'active', sessionName: 'console', logonTime: utc(2017, 8, 9, 16, 40) },
    ]);
  });

  it('reads German quser with its day-first date', () => {
    expect(parseQuery(fixture('quser-de.txt'))).toEqual<RawSession[]>([
      {
        sessionId: 5,
        user: 'thorgil.eisenhand',
        state: 'active',
        sessionName: 'rdp-tcp#10',
        logonTime: utc(2021, 9, 7, 17, 58),
      },
    ]);
  });

  it('reads English qwinsta and drops services, the unused console and the listener', () => {
    expect(parseQuery(fixture('qwinsta-en.txt'))).toEqual<RawSession[]>([
      { sessionId: 2, user: 'muoadmin_tg', state: 'disconnected', sessionName: '' },
      { sessionId: 3, user: 'muoadmin_tg', state: 'active', sessionName: 'rdp-tcp#2' },
    ]);
  });

  it('reads French quser, whose logon time starts left of its title, with idle time "aucun"', () => {
    expect(parseQuery(fixture('quser-fr.txt'))).toEqual<RawSession[]>([
      { sessionId: 2, user: 'jsboi', state: 'active', sessionName: 'rdp-tcp#1', logonTime: utc(2026, 9, 20, 12, 27) },
      { sessionId: 3, user: 'm.lefebvre', state: 'disconnected', sessionName: '', logonTime: utc(2026, 9, 7, 18, 30) },
      { sessionId: 5, user: 'c.dupont', state: 'active', sessionName: 'rdp-tcp#4', logonTime: utc(2026, 10, 1, 8, 5) },
    ]);
  });

  it('reads German qwinsta: a five-digit id left of its title, a user with no session name', () => {
    expect(parseQuery(fixture('qwinsta-de.txt'))).toEqual<RawSession[]>([
      { sessionId: 2, user: 'm.mueller', state: 'active', sessionName: 'rdp-tcp#3' },
      { sessionId: 4, user: 'k.schröder', state: 'disconnected', sessionName: '' },
    ]);
  });

  it('reads a column-wide user name, a longer one that pushes its row right, idle "none", 12 AM and 12 PM', () => {
    expect(parseQuery(fixture('quser-en-long-user.txt'))).toEqual<RawSession[]>([
      {
        sessionId: 4,
        user: 'reporting.svc.europe',
        state: 'active',
        sessionName: 'rdp-tcp#12',
        logonTime: utc(2024, 3, 14, 0, 5),
      },
      {
        sessionId: 6,
        user: 'sophie.vandermeulen',
        state: 'active',
        sessionName: 'rdp-tcp#13',
        logonTime: utc(2024, 3, 14, 12, 30),
      },
      {
        sessionId: 9,
        user: 'bartholomew.nakamura-lee',
        state: 'active',
        sessionName: 'rdp-tcp#15',
        logonTime: utc(2024, 11, 2, 9, 7),
      },
      { sessionId: 11, user: 'jo', state: 'disconnected', sessionName: '', logonTime: utc(2024, 12, 31, 23, 59) },
    ]);
  });

  it('reads "No User exists for *" as no sessions, in English, German and French', () => {
    expect(parseQuery(fixture('quser-no-user.txt'))).toEqual([]);
    expect(parseQuery('Kein Benutzer vorhanden für *\r\n')).toEqual([]);
    expect(parseQuery("Aucun utilisateur n'existe pour *\r\n")).toEqual([]);
  });
});

describe('parseQuery on awkward input', () => {
  const EN_HEADER = ' USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME';

  it('refuses a text without a recognizable header, naming the columns it expected', () => {
    const read = () => parseQuery('Error [5]: Access is denied.\r\n');
    expect(read).toThrow(QueryOutputError);
    expect(read).toThrow(
      /no recognizable header.*USERNAME SESSIONNAME ID STATE.*got "Error \[5\]: Access is denied\."/,
    );
    expect(() => parseQuery('')).toThrow(/query output is empty/);
  });

  it('refuses a user row whose state word it does not know, naming the word', () => {
    const text = `${EN_HEADER}\n bob                   rdp-tcp#3           3  Frozen          .  1/2/2024 3:04 PM\n`;
    expect(() => parseQuery(text)).toThrow(/line 2: unknown session state "Frozen"/);
  });

  it('drops a userless row whose state word it does not know rather than failing the table', () => {
    const text = [
      ' SESSIONNAME       USERNAME                 ID  STATE   TYPE        DEVICE',
      ' console                                     1  Wartet',
      ' rdp-tcp#2         ann                       2  Active',
    ].join('\n');
    expect(parseQuery(text)).toEqual<RawSession[]>([
      { sessionId: 2, user: 'ann', state: 'active', sessionName: 'rdp-tcp#2' },
    ]);
  });

  it('refuses a line under the header that is not a session row', () => {
    expect(() => parseQuery(`${EN_HEADER}\nquser : the RPC server is unavailable\n`)).toThrow(
      /line 2 is not a session row/,
    );
  });

  it('finds the header under leading noise, such as a PsExec banner', () => {
    const text = [
      'PsExec v2.2 - Execute processes remotely',
      '',
      EN_HEADER,
      '>ann                   console             1  Active      none   9/20/2026 8:02 AM',
    ].join('\r\n');
    expect(parseQuery(text)).toEqual<RawSession[]>([
      { sessionId: 1, user: 'ann', state: 'active', sessionName: 'console', logonTime: utc(2026, 9, 20, 8, 2) },
    ]);
  });

  it('still reads French titles and states whose accented letters were lost to a code page mismatch', () => {
    const french = fixture('quser-fr.txt');
    const expected = parseQuery(french);
    expect(parseQuery(french.replaceAll('É', '\ufffd').replaceAll('é', '\ufffd'))).toEqual(expected);
    expect(parseQuery(french.replaceAll('É', '').replaceAll('é', ''))).toEqual(expected);
  });

  it('keeps a logon time it cannot read as text', () => {
    const text = `${EN_HEADER}\n bob                   rdp-tcp#3           3  Active          .  2024年3月14日 9:07\n`;
    expect(parseQuery(text)).toEqual<RawSession[]>([
      { sessionId: 3, user: 'bob', state: 'active', sessionName: 'rdp-tcp#3', logonText: '2024年3月14日 9:07' },
    ]);
  });

  it('reads a user name with a space as one name', () => {
    const text = `${EN_HEADER}\n john smith            rdp-tcp#3           3  Active          .  1/2/2024 3:04 PM\n`;
    expect(parseQuery(text)[0]).toMatchObject({ user: 'john smith', sessionName: 'rdp-tcp#3', sessionId: 3 });
  });

  it('takes the id under the ID title when a user name also holds a number and a state word', () => {
    const text = `${EN_HEADER}\n kiosk 3 Idle          rdp-tcp#3           4  Active          .  1/2/2024 3:04 PM\n`;
    expect(parseQuery(text)[0]).toMatchObject({
      user: 'kiosk 3 Idle',
      sessionName: 'rdp-tcp#3',
      sessionId: 4,
      state: 'active',
    });
  });

  it('takes day first from the dateOrder option, for an English host with a day-first regional format', () => {
    const text = `${EN_HEADER}\n bob                   rdp-tcp#3           3  Active          .  14/03/2024 09:07\n`;
    expect(parseQuery(text)[0]).toMatchObject({ logonText: '14/03/2024 09:07' });
    expect(parseQuery(text, { dateOrder: 'day-first' })[0]).toMatchObject({ logonTime: utc(2024, 3, 14, 9, 7) });
  });
});

describe('parseLogonTime', () => {
  it('reads en-US month-first dates with AM/PM, 12 AM being midnight and 12 PM noon', () => {
    expect(parseLogonTime('7/9/2021 5:03 PM', false)).toBe(utc(2021, 7, 9, 17, 3));
    expect(parseLogonTime('12/1/2021 12:00 AM', false)).toBe(utc(2021, 12, 1, 0, 0));
    expect(parseLogonTime('12/1/2021 12:59 PM', false)).toBe(utc(2021, 12, 1, 12, 59));
  });

  it('reads German D.M.YYYY and French DD/MM/YYYY with 24-hour times', () => {
    expect(parseLogonTime('7.9.2021 17:58', true)).toBe(utc(2021, 9, 7, 17, 58));
    expect(parseLogonTime('07.09.2021 07:58', false)).toBe(utc(2021, 9, 7, 7, 58));
    expect(parseLogonTime('20/09/2026 12:27', true)).toBe(utc(2026, 9, 20, 12, 27));
  });

  it('reads ISO-like year-first dates whatever the order', () => {
    expect(parseLogonTime('2024-03-14 09:07', false)).toBe(utc(2024, 3, 14, 9, 7));
    expect(parseLogonTime('2024-03-14 09:07:30', true)).toBe(utc(2024, 3, 14, 9, 7) + 30_000);
  });

  it('reads the four-digit years 0001 to 9999 as written, leap days by the Gregorian rule', () => {
    const local = (y: number, m: number, d: number, h: number, min: number) => {
      const date = new Date(2000, 0, 1, h, min);
      date.setFullYear(y, m - 1, d);
      return date.getTime();
    };
    expect(parseLogonTime('0050-01-02 03:04', false)).toBe(local(50, 1, 2, 3, 4));
    expect(new Date(parseLogonTime('1/2/0099 3:04 AM', false)!).getFullYear()).toBe(99);
    expect(parseLogonTime('9999-12-31 23:59', false)).toBe(local(9999, 12, 31, 23, 59));
    expect(parseLogonTime('29.2.2028 10:00', true)).toBe(local(2028, 2, 29, 10, 0));
    expect(parseLogonTime('29.2.2027 10:00', true)).toBeUndefined();
    expect(parseLogonTime('29.2.0100 10:00', true)).toBeUndefined();
  });

  it('refuses dates and times that do not exist', () => {
    expect(parseLogonTime('2/30/2024 1:00 PM', false)).toBeUndefined();
    expect(parseLogonTime('13/13/2024 10:00', true)).toBeUndefined();
    expect(parseLogonTime('1/1/2024 13:00 PM', false)).toBeUndefined();
    expect(parseLogonTime('1/1/2024 24:00', false)).toBeUndefined();
    expect(parseLogonTime('1/1/24 10:00', false)).toBeUndefined();
  });
});

/** Renders rows in quser's column layout; like printf, a long value pushes the rest of its row right. */
function renderQuser(header: string, rows: readonly string[][]): string {
  const lines = rows.map(
    ([marker, user, session, id, state, idle, logon]) =>
      `${marker}${user!.padEnd(20)}  ${session!.padEnd(16)} ${id!.padStart(4)}  ${state!.padEnd(6)}${idle!.padStart(11)}  ${logon}`,
  );
  return [header, ...lines].join('\r\n');
}

const two = (n: number): string => String(n).padStart(2, '0');

const LANGUAGES = [
  {
    header: ' USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME',
    states: { active: 'Active', disconnected: 'Disc', connected: 'Conn', idle: 'Idle' },
    date: (d: Date) =>
      `${d.getUTCMonth() + 1}/${d.getUTCDate()}/${d.getUTCFullYear()} ${((d.getUTCHours() + 11) % 12) + 1}:` +
      `${two(d.getUTCMinutes())} ${d.getUTCHours() < 12 ? 'AM' : 'PM'}`,
  },
  {
    header: ' BENUTZERNAME          SITZUNGSNAME       ID  STATUS  LEERLAUF   ANMELDEZEIT',
    states: { active: 'Aktiv', disconnected: 'Getr.', connected: 'Verbunden', idle: 'Leerlauf' },
    date: (d: Date) =>
      `${two(d.getUTCDate())}.${two(d.getUTCMonth() + 1)}.${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`,
  },
  {
    header: ' UTILISATEUR           SESSION            ID  ÉTAT    TEMPS INACT TEMPS SESSION',
    states: { active: 'Actif', disconnected: 'Déco', connected: 'Connecté', idle: 'Inactif' },
    date: (d: Date) =>
      `${two(d.getUTCDate())}/${two(d.getUTCMonth() + 1)}/${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`,
  },
] as const;

describe('parseQuery on generated tables', () => {
  const nameChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789._-äöüé');
  const row = fc.record({
    user: fc
      .tuple(
        fc.string({ unit: nameChar, minLength: 1, maxLength: 10 }),
        fc.option(fc.string({ unit: nameChar, minLength: 1, maxLength: 9 })),
      )
      .map(([first, second]) => (second === null ? first : `${first} ${second}`)),
    session: fc.oneof(
      fc.constant(''),
      fc.constant('console'),
      fc.nat(999).map((n) => `rdp-tcp#${n}`),
    ),
    sessionId: fc.integer({ min: 1, max: 65535 }),
    state: fc.constantFrom<keyof (typeof LANGUAGES)[number]['states']>('active', 'disconnected', 'connected', 'idle'),
    idle: fc.constantFrom('.', 'none', 'aucun', 'Kein', '7', '1:39', '15+15:12'),
    marker: fc.constantFrom(' ', '>'),
    logon: fc
      .date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:00Z'), noInvalidDate: true })
      .map((d) => new Date(Math.floor(d.getTime() / 60_000) * 60_000)),
  });

  it('returns exactly the rendered rows, in English, German and French', () => {
    fc.assert(
      fc.property(fc.constantFrom(...LANGUAGES), fc.array(row, { maxLength: 8 }), (language, rows) => {
        const text = renderQuser(
          language.header,
          rows.map((r) => [
            r.marker,
            r.user,
            r.session,
            String(r.sessionId),
            language.states[r.state],
            r.idle,
            language.date(r.logon),
          ]),
        );
        const expected = rows.map<RawSession>((r) => ({
          sessionId: r.sessionId,
          user: r.user,
          state: r.state satisfies RawState,
          sessionName: r.session,
          logonTime: r.logon.getTime(),
        }));
        expect(parseQuery(text)).toEqual(expected);
      }),
    );
  });
});
