import { describe, it, expect } from 'vitest';
import {
  DEFAULT_LIMITS,
  MAX_STATUS_ERROR_CHARS,
  statusErrorText,
  parseAgentFrame,
  parseSession,
  type ParsedEvents,
  type ParsedFrame,
  type ParsedHello,
  type ParsedSnapshot,
} from '../src/index.js';

const session = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: 's1',
  user: 'CORP\\alice',
  admin: false,
  kind: 'desktop',
  via: 'ras',
  state: 'active',
  since: 1_700_000_000_000,
  ...overrides,
});

const upsert = (seq: number, overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  seq,
  at: 1_700_000_000_500,
  op: 'upsert',
  session: session(),
  ...overrides,
});

const end = (seq: number, id = 's1'): Record<string, unknown> => ({ seq, at: 1_700_000_000_900, op: 'end', id });

const hello = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  type: 'hello',
  farm: 'farm-a',
  host: 'rdsh-01',
  stream: 'stream-1',
  ...overrides,
});

function parse(frame: unknown): ParsedFrame {
  const result = parseAgentFrame(JSON.stringify(frame), DEFAULT_LIMITS);
  if (!result.ok) throw new Error(`expected a valid frame, got bad_frame: ${result.message}`);
  return result.frame;
}

function parseHello(frame: unknown): ParsedHello {
  const parsed = parse(frame);
  if (parsed.type !== 'hello') throw new Error(`expected hello, got ${parsed.type}`);
  return parsed;
}

function parseSnapshot(frame: unknown): ParsedSnapshot {
  const parsed = parse(frame);
  if (parsed.type !== 'snapshot') throw new Error(`expected snapshot, got ${parsed.type}`);
  return parsed;
}

function parseEvents(frame: unknown): ParsedEvents {
  const parsed = parse(frame);
  if (parsed.type !== 'events') throw new Error(`expected events, got ${parsed.type}`);
  return parsed;
}

/** Parses raw text and returns the bad_frame message; fails the test when the frame is accepted. */
function badFrame(text: string): string {
  const result = parseAgentFrame(text, DEFAULT_LIMITS);
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error('unreachable');
  expect(result.message.length).toBeGreaterThan(0);
  return result.message;
}

const badFrameOf = (frame: unknown): string => badFrame(JSON.stringify(frame));

describe('parseAgentFrame: bad_frame', () => {
  it('rejects text that is not JSON', () => {
    expect(badFrame('{"type":"hello"')).toMatch(/not valid JSON/);
    expect(badFrame('')).toMatch(/not valid JSON/);
  });

  it.each([
    ['a number', '42'],
    ['a string', '"hello"'],
    ['null', 'null'],
    ['true', 'true'],
    ['an array', '[{"type":"hello","farm":"a","host":"h","stream":"s"}]'],
  ])('rejects a frame that is %s, not an object', (_name, text) => {
    expect(badFrame(text)).toMatch(/must be a JSON object/);
  });

  it.each([
    ['missing', {}],
    ['unknown', { type: 'welcome' }],
    ['differently cased', { type: 'Hello' }],
    ['not a string', { type: 7 }],
  ])('rejects a frame whose type is %s', (_name, frame) => {
    expect(badFrameOf(frame)).toMatch(/unknown frame type|frame type must be a string/);
  });

  it('refuses a depth bomb as a bad frame, cheaply, whatever field holds it', () => {
    const bomb = '['.repeat(200_000) + ']'.repeat(200_000);
    expect(badFrame(`{"type":${bomb}}`)).toMatch(/nests deeper than/);
    expect(badFrame(`{"type":"events","events":[{"seq":1,"at":1,"op":"end","id":"a","x":${bomb}}]}`)).toMatch(
      /nests deeper than/,
    );
    // Brackets inside strings are text, not nesting.
    const text = JSON.stringify({ type: 'events', events: [{ seq: 1, at: 1, op: 'end', id: '['.repeat(100) }] });
    expect(parseAgentFrame(text, DEFAULT_LIMITS).ok).toBe(true);
  });

  describe('a snapshot with a bad seq', () => {
    it.each([
      ['missing', undefined],
      ['zero', 0],
      ['negative', -3],
      ['fractional', 1.5],
      ['a string', '1'],
      ['null', null],
      ['beyond safe integers', 2 ** 53],
    ])('rejects a seq that is %s', (_name, seq) => {
      const message = badFrameOf({ type: 'snapshot', seq, at: 1, sessions: [] });
      expect(message).toMatch(/^snapshot: seq must be a positive integer/);
    });
  });

  it('rejects a seq of 1e400, which JSON turns into Infinity', () => {
    expect(badFrame('{"type":"snapshot","seq":1e400,"at":1,"sessions":[]}')).toMatch(/seq/);
  });

  it.each([
    ['missing', undefined],
    ['an object', {}],
    ['a string', 'none'],
    ['null', null],
  ])('rejects a snapshot whose sessions is %s, not a list', (_name, sessions) => {
    expect(badFrameOf({ type: 'snapshot', seq: 1, at: 1, sessions })).toMatch(/sessions must be a list/);
  });

  it('rejects a snapshot with more sessions than the limit, and accepts one at the limit', () => {
    const listed = (n: number) => Array.from({ length: n }, (_, i) => session({ id: `s${i}` }));
    const atLimit = parseSnapshot({ type: 'snapshot', seq: 1, at: 1, sessions: listed(DEFAULT_LIMITS.maxSessions) });
    expect(atLimit.sessions).toHaveLength(DEFAULT_LIMITS.maxSessions);
    const message = badFrameOf({ type: 'snapshot', seq: 1, at: 1, sessions: listed(DEFAULT_LIMITS.maxSessions + 1) });
    expect(message).toMatch(/2001 sessions exceed the limit of 2000/);
  });

  it('applies the limits it is given rather than the defaults', () => {
    const limits = { ...DEFAULT_LIMITS, maxEvents: 2, maxSessions: 1 };
    const events = parseAgentFrame(JSON.stringify({ type: 'events', events: [end(1), end(2), end(3)] }), limits);
    expect(events).toMatchObject({ ok: false, message: expect.stringMatching(/3 events exceed the limit of 2/) });
    const snapshot = parseAgentFrame(
      JSON.stringify({ type: 'snapshot', seq: 1, at: 1, sessions: [session(), session({ id: 's2' })] }),
      limits,
    );
    expect(snapshot).toMatchObject({ ok: false, message: expect.stringMatching(/2 sessions exceed the limit of 1/) });
  });

  it.each([
    ['missing', undefined],
    ['an object', {}],
    ['a string', '[]'],
  ])('rejects an events frame whose events is %s, not a list', (_name, events) => {
    expect(badFrameOf({ type: 'events', events })).toMatch(/events must be a list/);
  });

  it('rejects an events frame with more events than the limit, and accepts one at the limit', () => {
    const listed = (n: number) => Array.from({ length: n }, (_, i) => end(i + 1, `s${i}`));
    expect(parseEvents({ type: 'events', events: listed(DEFAULT_LIMITS.maxEvents) }).events).toHaveLength(
      DEFAULT_LIMITS.maxEvents,
    );
    expect(badFrameOf({ type: 'events', events: listed(DEFAULT_LIMITS.maxEvents + 1) })).toMatch(
      /1001 events exceed the limit of 1000/,
    );
  });

  it.each([
    ['a number', 5],
    ['a string', 'upsert'],
    ['null', null],
    ['an array', [1, 'upsert']],
  ])('rejects an events frame with an item that is %s, not an object', (_name, item) => {
    expect(badFrameOf({ type: 'events', events: [end(1), item] })).toMatch(/^events\[1\]: must be an object/);
  });

  describe('an event item with a bad seq', () => {
    it.each([
      ['missing', undefined],
      ['zero', 0],
      ['negative', -1],
      ['fractional', 2.5],
      ['a string', '2'],
    ])('rejects the whole frame when an item seq is %s', (_name, seq) => {
      const message = badFrameOf({ type: 'events', events: [end(1), { ...end(2), seq }] });
      expect(message).toMatch(/^events\[1\]: seq must be a positive integer/);
    });
  });
});

describe('parseAgentFrame: hello', () => {
  it('accepts a valid hello with and without the agent field', () => {
    expect(parseHello(hello())).toEqual({
      type: 'hello',
      hello: { type: 'hello', farm: 'farm-a', host: 'rdsh-01', stream: 'stream-1' },
    });
    expect(parseHello(hello({ agent: 'rasmon-agent/1.2.3' })).hello?.agent).toBe('rasmon-agent/1.2.3');
  });

  it('accepts farm and host names at the edges of the pattern', () => {
    for (const name of ['a', '0', 'A.b_c-d', `x${'y'.repeat(63)}`]) {
      const parsed = parseHello(hello({ farm: name, host: name }));
      expect(parsed.problem, name).toBeUndefined();
      expect(parsed.hello?.farm).toBe(name);
    }
  });

  it.each(['farm', 'host'])('reports a problem for a bad %s name', (field) => {
    for (const bad of [
      '',
      '-starts-with-dash',
      '.dot',
      '_under',
      'has space',
      'slash/x',
      'ümlaut',
      `x${'y'.repeat(64)}`,
      'tail\n',
    ]) {
      const parsed = parseHello(hello({ [field]: bad }));
      expect(parsed.hello, JSON.stringify(bad)).toBeUndefined();
      expect(parsed.problem, JSON.stringify(bad)).toMatch(new RegExp(`^${field}:`));
    }
    const missing = hello();
    delete missing[field];
    expect(parseHello(missing).problem).toMatch(new RegExp(`^${field}:`));
  });

  it('reports a problem for an empty, a 65-character or a missing stream, and accepts 64 characters', () => {
    expect(parseHello(hello({ stream: '' })).problem).toMatch(/^stream:/);
    expect(parseHello(hello({ stream: 's'.repeat(65) })).problem).toMatch(/^stream:/);
    const missing = hello();
    delete missing.stream;
    expect(parseHello(missing).problem).toMatch(/^stream:/);
    expect(parseHello(hello({ stream: 's'.repeat(64) })).problem).toBeUndefined();
  });

  it('accepts a host key of 43 base64url characters and reports any other without echoing it', () => {
    const key = 'A_-z'.repeat(10) + 'abc';
    expect(parseHello(hello({ hostKey: key })).hello?.hostKey).toBe(key);
    for (const bad of [key.slice(1), `${key}d`, `${key.slice(1)}=`, `${key.slice(1)}+`, `${key.slice(1)}/`, 7]) {
      const parsed = parseHello(hello({ hostKey: bad }));
      expect(parsed.hello, JSON.stringify(bad)).toBeUndefined();
      expect(parsed.problem, JSON.stringify(bad)).toMatch(/^hostKey:/);
      if (typeof bad === 'string') expect(parsed.problem).not.toContain(bad);
    }
  });

  it('ignores unknown hello fields', () => {
    expect(parseHello(hello({ version: 9, extra: { x: 1 } })).hello).toEqual({
      type: 'hello',
      farm: 'farm-a',
      host: 'rdsh-01',
      stream: 'stream-1',
    });
  });
});

describe('parseAgentFrame: item rejections in events', () => {
  it.each([
    ['a bad op', { ...end(2), op: 'delete' }, /^op:/],
    ['a missing op', { seq: 2, at: 1, id: 's1' }, /^op:/],
    ['a negative at', { ...end(2), at: -1 }, /^at:/],
    ['a fractional at', { ...end(2), at: 1.5 }, /^at:/],
    ['a string at', { ...end(2), at: '1700000000000' }, /^at:/],
    ['a missing at', { seq: 2, op: 'end', id: 's1' }, /^at:/],
    ['an empty id', end(2, ''), /^id:/],
    ['a 129-character id', end(2, 'i'.repeat(129)), /^id:/],
    ['a numeric id', { ...end(2), id: 7 }, /^id:/],
    ['a missing session', { seq: 2, at: 1, op: 'upsert' }, /^session/],
    ['a blank user', upsert(2, { session: session({ user: '   ' }) }), /^session\.user:/],
    ['an empty user', upsert(2, { session: session({ user: '' }) }), /^session\.user:/],
    ['a 257-character user', upsert(2, { session: session({ user: 'u'.repeat(257) }) }), /^session\.user:/],
    ['a bad kind', upsert(2, { session: session({ kind: 'web' }) }), /^session\.kind:/],
    ['a bad via', upsert(2, { session: session({ via: 'ica' }) }), /^session\.via:/],
    ['a bad state', upsert(2, { session: session({ state: 'idle' }) }), /^session\.state:/],
    ['a string admin', upsert(2, { session: session({ admin: 'true' }) }), /^session\.admin:/],
    ['a negative since', upsert(2, { session: session({ since: -5 }) }), /^session\.since:/],
    ['a missing since', upsert(2, { session: session({ since: undefined }) }), /^session\.since:/],
    ['an empty session id', upsert(2, { session: session({ id: '' }) }), /^session\.id:/],
    ['a client that is not an object', upsert(2, { session: session({ client: 'pc-7' }) }), /^session\.client/],
  ])('rejects an item with %s and keeps the rest of the frame', (_name, bad, reason) => {
    const parsed = parseEvents({ type: 'events', events: [upsert(1), bad, end(3)] });
    expect(parsed.rejected).toHaveLength(1);
    expect(parsed.rejected[0]?.seq).toBe(2);
    expect(parsed.rejected[0]?.reason).toMatch(reason);
    expect(parsed.rejected[0]).not.toHaveProperty('id');
    expect(parsed.events).toEqual([
      { seq: 1, at: 1_700_000_000_500, op: 'upsert', session: { ...session(), user: 'corp\\alice' } },
      { seq: 2, op: 'rejected' },
      { seq: 3, at: 1_700_000_000_900, op: 'end', id: 's1' },
    ]);
  });

  it('accepts a 256-character user and a 128-character id', () => {
    const parsed = parseEvents({
      type: 'events',
      events: [upsert(1, { session: session({ id: 'i'.repeat(128), user: 'U'.repeat(256) }) })],
    });
    expect(parsed.rejected).toEqual([]);
    expect(parsed.events[0]).toMatchObject({ op: 'upsert', session: { id: 'i'.repeat(128), user: 'u'.repeat(256) } });
  });

  it('reports every rejected item of a frame, in order', () => {
    const parsed = parseEvents({
      type: 'events',
      events: [{ ...end(4), op: 'x' }, end(5), upsert(6, { session: session({ user: ' ' }) })],
    });
    expect(parsed.rejected.map((r) => r.seq)).toEqual([4, 6]);
    expect(parsed.events.map((e) => e.op)).toEqual(['rejected', 'end', 'rejected']);
  });

  it('accepts an empty events list', () => {
    expect(parseEvents({ type: 'events', events: [] })).toEqual({ type: 'events', events: [], rejected: [] });
  });
});

describe('parseAgentFrame: snapshots', () => {
  it('accepts a valid snapshot, keeping sessions in the order listed', () => {
    const parsed = parseSnapshot({
      type: 'snapshot',
      seq: 9,
      at: 1_700_000_001_000,
      sessions: [
        session({ id: 'b' }),
        session({ id: 'a', admin: true, kind: 'app', via: 'rdp', state: 'disconnected' }),
      ],
    });
    expect(parsed.seq).toBe(9);
    expect(parsed.at).toBe(1_700_000_001_000);
    expect(parsed.rejected).toEqual([]);
    expect(parsed.sessions.map((s) => s.id)).toEqual(['b', 'a']);
    expect(parsed.sessions[1]).toEqual({
      id: 'a',
      user: 'corp\\alice',
      admin: true,
      kind: 'app',
      via: 'rdp',
      state: 'disconnected',
      since: 1_700_000_000_000,
    });
  });

  it('leaves an invalid session out and reports it with its id', () => {
    const parsed = parseSnapshot({
      type: 'snapshot',
      seq: 4,
      at: 1,
      sessions: [session({ id: 'good-1' }), session({ id: 'bad', user: '   ' }), session({ id: 'good-2' })],
    });
    expect(parsed.sessions.map((s) => s.id)).toEqual(['good-1', 'good-2']);
    expect(parsed.rejected).toEqual([{ seq: 4, id: 'bad', reason: expect.stringMatching(/^session\.user:/) }]);
  });

  it('reports an invalid session without a usable id without an id', () => {
    const parsed = parseSnapshot({
      type: 'snapshot',
      seq: 4,
      at: 1,
      sessions: [session({ id: 17 }), 'not a session', session()],
    });
    expect(parsed.sessions.map((s) => s.id)).toEqual(['s1']);
    expect(parsed.rejected).toHaveLength(2);
    for (const rejection of parsed.rejected) {
      expect(rejection.seq).toBe(4);
      expect(rejection).not.toHaveProperty('id');
      expect(rejection.reason).toMatch(/^session/);
    }
  });

  it('rejects a second session with the same id and keeps the first', () => {
    const parsed = parseSnapshot({
      type: 'snapshot',
      seq: 2,
      at: 1,
      sessions: [
        session({ id: 'dup', user: 'first' }),
        session({ id: 'other' }),
        session({ id: 'dup', user: 'second' }),
      ],
    });
    expect(parsed.sessions.map((s) => [s.id, s.user])).toEqual([
      ['dup', 'first'],
      ['other', 'corp\\alice'],
    ]);
    expect(parsed.rejected).toEqual([{ seq: 2, id: 'dup', reason: expect.stringMatching(/twice/) }]);
  });

  it('rejects a snapshot whose at is not milliseconds since the epoch', () => {
    expect(badFrameOf({ type: 'snapshot', seq: 1, at: -1, sessions: [] })).toMatch(/at/);
    expect(badFrameOf({ type: 'snapshot', seq: 1, sessions: [] })).toMatch(/at/);
  });
});

describe('parseAgentFrame: unknown fields and normalization', () => {
  it('ignores unknown fields of frames, items, sessions and clients', () => {
    const parsed = parseEvents({
      type: 'events',
      comment: 'x',
      events: [
        upsert(1, {
          trace: 'abc',
          session: session({ color: 'blue', client: { name: 'pc-7', address: '10.0.0.7', os: 'win' } }),
        }),
      ],
    });
    expect(parsed.rejected).toEqual([]);
    expect(parsed.events[0]).toEqual({
      seq: 1,
      at: 1_700_000_000_500,
      op: 'upsert',
      session: { ...session(), user: 'corp\\alice', client: { name: 'pc-7', address: '10.0.0.7' } },
    });
  });

  it('drops a client that carries nothing', () => {
    const parsed = parseSnapshot({ type: 'snapshot', seq: 1, at: 1, sessions: [session({ client: { os: 'x' } })] });
    expect(parsed.sessions[0]).not.toHaveProperty('client');
  });

  it('normalizes users: trimmed and lower case', () => {
    const parsed = parseEvents({
      type: 'events',
      events: [upsert(1, { session: session({ user: '  CORP\\Alice ' }) })],
    });
    expect(parsed.events[0]).toMatchObject({ session: { user: 'corp\\alice' } });
  });

  it('normalizes users to NFC, so a decomposed é equals a composed one', () => {
    const parsed = parseSnapshot({
      type: 'snapshot',
      seq: 1,
      at: 1,
      sessions: [session({ id: 'a', user: 'CORP\\Re\u0301mi' }), session({ id: 'b', user: 'corp\\r\u00e9mi' })],
    });
    const [first, second] = parsed.sessions;
    expect(first?.user).toBe('corp\\r\u00e9mi');
    expect(second?.user).toBe(first?.user);
  });

  it('lower-cases without locale rules', () => {
    const parsed = parseEvents({ type: 'events', events: [upsert(1, { session: session({ user: 'CORP\\IVAN' }) })] });
    expect(parsed.events[0]).toMatchObject({ session: { user: 'corp\\ivan' } });
  });
});

describe('values that would break an output later', () => {
  const valid = { id: 's1', user: 'corp\\alice', admin: false, kind: 'desktop', via: 'ras', state: 'active', since: 1 };

  it.each([
    ['a user with a carriage return', { ...valid, user: 'corp\\alice\r\nx' }],
    ['a user with NUL', { ...valid, user: 'corp\\al\u0000ice' }],
    ['an id with ESC', { ...valid, id: 's\u001b[31m' }],
    ['a client name with DEL', { ...valid, client: { name: 'pc\u007f' } }],
    ['a since after the last date a Date holds', { ...valid, since: 9007199254740991 }],
  ])('refuses %s', (_what, session) => {
    expect(parseSession(session)).toHaveProperty('reason');
  });

  it('accepts a since at the last date a Date holds, and non-ASCII names', () => {
    expect(parseSession({ ...valid, since: 8.64e15, user: 'CORP\\Ærøskøbing' })).toHaveProperty('session');
  });
});

describe('parseAgentFrame: status', () => {
  const status = (overrides: Record<string, unknown> = {}) => ({
    type: 'status',
    source: 'wts',
    ok: false,
    error: 'access denied',
    lastListAt: 1_700_000_000_000,
    ...overrides,
  });
  const parsed = (frame: unknown) => {
    const result = parseAgentFrame(JSON.stringify(frame), DEFAULT_LIMITS);
    if (!result.ok || result.frame.type !== 'status') throw new Error(`not a status: ${JSON.stringify(result)}`);
    return result.frame.status;
  };

  it('keeps source, ok, error and lastListAt, drops unknown fields, and an error beside ok true', () => {
    expect(parsed({ ...status(), seq: 4, extra: 1 })).toEqual({
      type: 'status',
      source: 'wts',
      ok: false,
      error: 'access denied',
      lastListAt: 1_700_000_000_000,
    });
    expect(parsed(status({ ok: true, error: 'stale' }))).toEqual({
      type: 'status',
      source: 'wts',
      ok: true,
      lastListAt: 1_700_000_000_000,
    });
    expect(parsed({ type: 'status', source: 'quser', ok: false })).toEqual({
      type: 'status',
      source: 'quser',
      ok: false,
    });
  });

  it('refuses a long error, control characters, a bad source or ok, a bad lastListAt', () => {
    expect(badFrameOf(status({ error: 'x'.repeat(MAX_STATUS_ERROR_CHARS + 1) }))).toMatch(/^status\.?.*error/);
    expect(parsed(status({ error: 'x'.repeat(MAX_STATUS_ERROR_CHARS) })).error).toHaveLength(MAX_STATUS_ERROR_CHARS);
    expect(badFrameOf(status({ error: 'line one\nline two' }))).toMatch(/control characters/);
    expect(badFrameOf(status({ error: 'bell\u0007' }))).toMatch(/control characters/);
    expect(badFrameOf(status({ error: 'csi\u009b' }))).toMatch(/control characters/);
    expect(badFrameOf(status({ source: 'W TS' }))).toMatch(/source/);
    expect(badFrameOf(status({ ok: 'no' }))).toMatch(/ok/);
    expect(badFrameOf(status({ lastListAt: -1 }))).toMatch(/lastListAt/);
  });

  it('statusErrorText makes any message sendable: control characters to spaces, cut to the limit', () => {
    expect(statusErrorText('exit 3:\r\n\u001b[31mdenied\u001b[0m\t ')).toBe('exit 3: [31mdenied [0m');
    const long = statusErrorText('é'.repeat(1000));
    expect(long).toHaveLength(MAX_STATUS_ERROR_CHARS);
    expect(parsed(status({ error: long })).error).toBe(long);
    const pairs = statusErrorText('😀'.repeat(400));
    expect(pairs.isWellFormed()).toBe(true);
    expect(parsed(status({ error: pairs })).error).toBe(pairs);
  });
});
