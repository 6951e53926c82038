import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { RawSession } from '../src/windows/raw-session.js';
import { parseWtsOutput, WtsOutputError } from '../src/windows/wts-output.js';

const SCRIPT_OUTPUT = readFileSync(new URL('./fixtures/wts-output.json', import.meta.url), 'utf8');

const session = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  sessionId: 2,
  user: 'alice',
  domain: 'CORP',
  state: 'active',
  sessionName: 'RDP-Tcp#7',
  logonTime: 1_717_399_800_000,
  clientName: 'LAPTOP-ALICE',
  clientAddress: '10.20.30.40',
  protocolType: 2,
  processes: ['explorer.exe'],
  admin: false,
  ...overrides,
});

const parseOne = (overrides: Record<string, unknown>) => () => parseWtsOutput(JSON.stringify([session(overrides)]));

describe('parseWtsOutput', () => {
  it("pins the script's JSON: an active desktop, a disconnected admin session and a published app", () => {
    expect(parseWtsOutput(SCRIPT_OUTPUT)).toEqual<RawSession[]>([
      {
        sessionId: 2,
        user: 'alice',
        domain: 'CORP',
        state: 'active',
        sessionName: 'RDP-Tcp#7',
        logonTime: Date.UTC(2024, 5, 3, 7, 30),
        clientName: 'LAPTOP-ALICE',
        clientAddress: '10.20.30.40',
        protocolType: 2,
        processes: ['ctfmon.exe', 'explorer.exe', 'rdpclip.exe', 'winword.exe'],
        admin: false,
      },
      {
        sessionId: 3,
        user: 'adm.bob',
        domain: 'CORP',
        state: 'disconnected',
        sessionName: '',
        logonTime: Date.UTC(2024, 5, 2, 8, 0),
        protocolType: 2,
        processes: ['explorer.exe', 'mmc.exe'],
        admin: true,
      },
      {
        sessionId: 5,
        user: 'carol',
        domain: 'CORP',
        state: 'active',
        sessionName: 'RDP-Tcp#9',
        logonTime: Date.UTC(2024, 5, 3, 9, 5),
        clientName: 'THINCLIENT-07',
        clientAddress: '2001:db8::17',
        protocolType: 2,
        processes: ['excel.exe', 'rdpclip.exe', 'rdpinit.exe', 'rdpshell.exe'],
        admin: false,
      },
    ]);
  });

  it('drops null fields instead of keeping them as null', () => {
    const [disconnected] = parseWtsOutput(SCRIPT_OUTPUT).filter((s) => s.state === 'disconnected');
    expect(disconnected).not.toHaveProperty('clientName');
    expect(disconnected).not.toHaveProperty('clientAddress');
  });

  it('reads a single object, as PowerShell may print a list of one, as a one-element list', () => {
    expect(parseWtsOutput(JSON.stringify(session({ admin: null })))).toEqual<RawSession[]>([
      {
        sessionId: 2,
        user: 'alice',
        domain: 'CORP',
        state: 'active',
        sessionName: 'RDP-Tcp#7',
        logonTime: 1_717_399_800_000,
        clientName: 'LAPTOP-ALICE',
        clientAddress: '10.20.30.40',
        protocolType: 2,
        processes: ['explorer.exe'],
      },
    ]);
  });

  it('reads an empty array, and a byte-order mark, as printed by PowerShell', () => {
    expect(parseWtsOutput('[]\r\n')).toEqual([]);
    expect(parseWtsOutput(`\uFEFF${SCRIPT_OUTPUT}`)).toHaveLength(3);
  });

  it('needs only sessionId, user and state', () => {
    expect(parseWtsOutput('[{"sessionId":7,"user":"dave","state":"idle"}]')).toEqual<RawSession[]>([
      { sessionId: 7, user: 'dave', state: 'idle' },
    ]);
  });

  it.each([
    ['a missing user', { user: undefined }, /\[0\]\.user: /],
    ['a blank user', { user: '  ' }, /\[0\]\.user: must not be blank/],
    ['a state in the wrong case', { state: 'Active' }, /\[0\]\.state: /],
    ['a state outside WTS_CONNECTSTATE_CLASS', { state: 'locked' }, /\[0\]\.state: /],
    ['a session id as text', { sessionId: '2' }, /\[0\]\.sessionId: /],
    ['a negative session id', { sessionId: -1 }, /\[0\]\.sessionId: /],
    ['a fractional logon time', { logonTime: 1.5 }, /\[0\]\.logonTime: /],
    ['a logon time as a date string', { logonTime: '2024-06-03T07:30:00Z' }, /\[0\]\.logonTime: /],
    ['processes as one string', { processes: 'rdpinit.exe' }, /\[0\]\.processes: /],
    ['a process that is not a string', { processes: ['rdpinit.exe', 7] }, /\[0\]\.processes\[1\]: /],
    ['admin as text', { admin: 'True' }, /\[0\]\.admin: /],
    ['a misspelt field', { sessionID: 2 }, /\[0\]: unknown field "sessionID"/],
  ])('refuses %s, naming the index and field', (_, overrides, message) => {
    expect(parseOne(overrides)).toThrow(WtsOutputError);
    expect(parseOne(overrides)).toThrow(message);
  });

  it('names the index of the bad session in a longer list', () => {
    const text = JSON.stringify([session(), session({ sessionId: 3 }), session({ sessionId: 4, state: 'gone' })]);
    expect(() => parseWtsOutput(text)).toThrow(/output \[2\]\.state: /);
  });

  it.each([
    ['empty output', '', /is empty/],
    ['text that is not JSON', 'Add-Type : Cannot add type.', /not JSON/],
    ['a bare number', '42', /not a JSON array of sessions/],
    ['a list of non-objects', '[1]', /\[0\]: /],
  ])('refuses %s', (_, text, message) => {
    expect(() => parseWtsOutput(text)).toThrow(message);
  });

  it('gives its errors a stable code', () => {
    expect(() => parseWtsOutput('')).toThrow(expect.objectContaining({ code: 'RASMON_WTS_OUTPUT' }));
  });
});
