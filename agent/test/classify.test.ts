import { describe, expect, it } from 'vitest';
import { CLASSIFY_DEFAULTS, Classifier } from '../src/windows/classify.js';
import type { RawSession } from '../src/windows/raw-session.js';

const raw = (fields: { [K in keyof RawSession]?: RawSession[K] | undefined } = {}): RawSession =>
  ({
    sessionId: 3,
    user: 'alice',
    state: 'active',
    sessionName: 'rdp-tcp#1',
    logonTime: 1_700_000_000_000,
    ...fields,
  }) as RawSession;

const classifier = (config: Partial<typeof CLASSIFY_DEFAULTS> & { domain?: string } = {}) =>
  new Classifier({ ...CLASSIFY_DEFAULTS, ...config });

describe('classification', () => {
  it('puts the configured domain before bare user names, and keeps DOMAIN\\user and UPNs as they are', () => {
    const c = classifier({ domain: 'CORP' });
    const [a, b, d, e] = c.classify(
      [
        raw({ sessionId: 2 }),
        raw({ sessionId: 3, user: 'OTHER\\bob' }),
        raw({ sessionId: 4, user: 'carol', domain: 'LAB' }),
        raw({ sessionId: 5, user: 'dave@corp.example' }),
      ],
      0,
    );
    expect([a!.user, b!.user, d!.user, e!.user]).toEqual([
      'CORP\\alice',
      'OTHER\\bob',
      'LAB\\carol',
      'dave@corp.example',
    ]);
  });

  it('leaves out the services session, listeners, rows without a user, and the console unless configured', () => {
    const list = [
      raw({ sessionId: 0, user: 'system' }),
      raw({ sessionId: 65536, state: 'listen' }),
      raw({ sessionId: 7, user: '  ' }),
      raw({ sessionId: 1, sessionName: 'console' }),
      raw({ sessionId: 8, protocolType: 0, sessionName: '' }),
      raw({ sessionId: 9 }),
    ];
    expect(
      classifier()
        .classify(list, 0)
        .map((s) => s.id),
    ).toEqual(['9-1700000000000']);
    expect(
      classifier({ includeConsole: true })
        .classify(list, 0)
        .map((s) => s.id),
    ).toHaveLength(3);
  });

  it("tells ras from rdp by the gateways' address ranges or client names, and says ras when none are configured", () => {
    const list = [
      raw({ sessionId: 2, clientAddress: '10.20.0.5' }),
      raw({ sessionId: 3, clientAddress: '192.168.1.9' }),
      raw({ sessionId: 4, clientName: 'RAS-GW01' }),
      raw({ sessionId: 5 }),
    ];
    expect(
      classifier()
        .classify(list, 0)
        .map((s) => s.via),
    ).toEqual(['ras', 'ras', 'ras', 'ras']);
    const c = classifier({ rasGateways: ['10.20.0.0/16', 'fd00::/8'], rasClientNames: ['ras-gw01'] });
    expect(c.classify(list, 0).map((s) => s.via)).toEqual(['ras', 'rdp', 'ras', 'rdp']);
    expect(c.classify([raw({ clientAddress: 'fd00::17' })], 0)[0]!.via).toBe('ras');
  });

  it('matches an IPv4-mapped IPv6 client address against IPv4 gateway ranges', () => {
    const c = classifier({ rasGateways: ['10.20.0.0/16'] });
    expect(c.classify([raw({ clientAddress: '::ffff:10.20.3.4' })], 0)[0]!.via).toBe('ras');
    expect(c.classify([raw({ clientAddress: '::ffff:10.21.3.4' })], 0)[0]!.via).toBe('rdp');
  });

  it('marks published-app sessions by their RemoteApp shell processes', () => {
    const c = classifier();
    const [desktop, app] = c.classify(
      [
        raw({ sessionId: 2, processes: ['explorer.exe'] }),
        raw({ sessionId: 3, processes: ['RDPINIT.EXE', 'excel.exe'] }),
      ],
      0,
    );
    expect(desktop!.kind).toBe('desktop');
    expect(app!.kind).toBe('app');
  });

  it('takes admins from the source and from the configured accounts, in any case', () => {
    const c = classifier({ domain: 'CORP', adminUsers: ['corp\\ops'] });
    const [a, b, d] = c.classify(
      [raw({ sessionId: 2, admin: true }), raw({ sessionId: 3, user: 'OPS' }), raw({ sessionId: 4 })],
      0,
    );
    expect([a!.admin, b!.admin, d!.admin]).toEqual([true, true, false]);
  });

  it('reports the states of a logged-on user as WTS_CONNECTSTATE_CLASS documents them, and no others', () => {
    const states = [
      'active',
      'shadow',
      'disconnected',
      'connected',
      'connectquery',
      'idle',
      'listen',
      'reset',
      'down',
      'init',
    ] as const;
    const list = states.map((state, i) => raw({ sessionId: 10 + i, state }));
    expect(
      classifier()
        .classify(list, 0)
        .map((s) => [s.id.split('-')[0], s.state]),
    ).toEqual([
      ['10', 'active'],
      ['11', 'active'],
      ['12', 'disconnected'],
    ]);
  });

  it('keeps the last state of a reported logon while its user reconnects through Connected', () => {
    const c = classifier();
    expect(c.classify([raw({ state: 'disconnected' })], 0)[0]!.state).toBe('disconnected');
    expect(c.classify([raw({ state: 'connectquery' })], 1000)[0]!.state).toBe('disconnected');
    expect(c.classify([raw({ state: 'connected' })], 2000)[0]!.state).toBe('disconnected');
    expect(c.classify([raw({ state: 'active' })], 3000)[0]!.state).toBe('active');
    // A new logon still at the logon screen is not a session yet.
    expect(c.classify([raw({ sessionId: 4, state: 'connected', logonTime: 5 })], 4000)).toEqual([]);
  });

  it('reports the console, when included, via rdp: it never comes through RAS', () => {
    const list = [raw({ sessionId: 1, sessionName: 'Console', protocolType: 0 }), raw({ sessionId: 2 })];
    expect(
      classifier({ includeConsole: true })
        .classify(list, 0)
        .map((s) => s.via),
    ).toEqual(['rdp', 'ras']);
    const withGateways = classifier({ includeConsole: true, rasGateways: ['10.0.0.0/8'] });
    expect(
      withGateways.classify([raw({ sessionId: 1, sessionName: 'console', clientAddress: '10.0.0.1' })], 0)[0]!.via,
    ).toBe('rdp');
  });

  it('dates a session without a known logon time when first seen, and keeps that while it lives', () => {
    const c = classifier();
    const first = c.classify([raw({ logonTime: undefined, logonText: '??' })], 1000)[0]!;
    const later = c.classify([raw({ logonTime: undefined, logonText: '??' })], 5000)[0]!;
    expect(first.since).toBe(1000);
    expect(later).toEqual(first);
    c.classify([], 6000);
    expect(c.classify([raw({ logonTime: undefined, logonText: '??' })], 7000)[0]!.since).toBe(7000);
  });

  it('keeps the id of a session without a logon time across a restart, from the list reported before', () => {
    const before = classifier().classify([raw({ logonTime: undefined }), raw({ sessionId: 4 })], 1000);
    const restarted = classifier();
    restarted.resume(before);
    const after = restarted.classify([raw({ logonTime: undefined }), raw({ sessionId: 4 })], 90_000);
    expect(after.map((s) => s.id)).toEqual(before.map((s) => s.id));
    expect(after[0]!.since).toBe(1000);
  });

  it('carries the client name and address', () => {
    const [s] = classifier().classify([raw({ clientName: 'LAPTOP-1', clientAddress: '10.0.0.1' })], 0);
    expect(s!.client).toEqual({ name: 'LAPTOP-1', address: '10.0.0.1' });
  });
});
