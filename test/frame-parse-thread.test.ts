/**
 * Big agent frames are parsed in a worker thread, from their text or from the bytes they came in:
 * what comes back is what parsing them on the agents' thread gives (a snapshot's listing for
 * beginSnapshot.lua made besides), bad frames included, and a worker that dies with frames in it
 * loses none (they are parsed on the agents' thread instead).
 */
import type { Worker } from 'node:worker_threads';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Limits } from '@rasmon/protocol';
// The built modules: the worker is loaded by Node from the file beside them, not through the test runner.
import { BIG_FRAME_BYTES, FrameParseThread } from '../collector/dist/ingest/frame-parse-thread.js';
import { readFrame } from '../collector/dist/ingest/frame-read.js';
import { joinItems, snapshotListing } from '../collector/dist/engine/script-args.js';

const LIMITS: Limits = { maxFrameBytes: 4 * 1024 * 1024, maxEvents: 5000, maxSessions: 5000 };

function snapshotText(count: number, seq = 7): string {
  const sessions: unknown[] = [];
  for (let i = 0; i < count; i += 1) {
    sessions.push({
      id: String(i),
      user: `CORP\\User-${i}`,
      admin: false,
      kind: 'desktop',
      via: 'ras',
      state: i % 3 === 0 ? 'disconnected' : 'active',
      since: 1_700_000_000_000 + i,
      client: { name: `pc-${i}` },
    });
  }
  // One invalid session and one listed twice: rejected, the rest stands.
  sessions.push({ id: 'bad', user: '', admin: false });
  sessions.push(sessions[0]);
  return JSON.stringify({ type: 'snapshot', seq, at: 1_700_000_000_000, sessions });
}

function started(): FrameParseThread {
  const thread = new FrameParseThread();
  onTestFinished(() => thread.close());
  return thread;
}

describe('the frame parse worker', () => {
  it("gives a big snapshot packed as the agents' thread would, users normalized, rejections listed", async () => {
    const text = snapshotText(2000);
    expect(text.length).toBeGreaterThan(BIG_FRAME_BYTES);
    const thread = started();
    const reading = thread.read(text, LIMITS);
    // Handed to the worker, not parsed here.
    expect(reading).toBeInstanceOf(Promise);
    const result = await reading;
    if (!result.ok || result.frame.type !== 'snapshot') throw new Error('expected a snapshot');
    // beginSnapshot.lua's listing comes made, as UTF-8 bytes; the rest is what parsing here gives.
    const { listing, ...sessions } = result.frame.sessions;
    expect(Buffer.from(listing!).toString('utf8')).toBe(snapshotListing(sessions));
    expect({ ...result, frame: { ...result.frame, sessions } }).toEqual(readFrame(text, LIMITS));
    expect(result.frame.sessions.users).toHaveLength(2000);
    expect(result.frame.sessions.users[1]).toBe('corp\\user-1');
    expect(result.frame.rejected.map((r) => r.reason)).toEqual([
      expect.stringContaining('session.'),
      'session.id: appears twice in this snapshot',
    ]);
    expect(JSON.parse(joinItems(result.frame.sessions.items))).toHaveLength(2000 * 8);
    expect(result.frame.sessions.ids[1]).toBe('1');
  });

  it('takes a frame as the bytes it came in, and gives what its text gives', async () => {
    const text = snapshotText(2000).replace('User-1"', 'Ünïcödé-1"');
    const bytes = Buffer.from(text, 'utf8');
    const thread = started();
    const [fromBytes, fromText] = await Promise.all([thread.read(bytes, LIMITS), thread.read(text, LIMITS)]);
    expect(fromBytes).toEqual(fromText);
    if (!fromBytes.ok || fromBytes.frame.type !== 'snapshot') throw new Error('expected a snapshot');
    expect(fromBytes.frame.sessions.users[1]).toBe('corp\\ünïcödé-1');
    // A small frame's bytes are parsed here, at once.
    const small = thread.read(Buffer.from(JSON.stringify({ type: 'events', events: [] })), LIMITS);
    expect(small).toEqual({ ok: true, frame: { type: 'events', events: [], rejected: [] } });
  });

  it('answers a bad big frame with the same message as a small one would get, and a small frame at once', async () => {
    const thread = started();
    const tooMany = snapshotText(200).replace('"seq":7', '"seq":-1');
    expect(await thread.read(tooMany, LIMITS)).toEqual({
      ok: false,
      message: 'snapshot: seq must be a positive integer',
    });
    const over = await thread.read(snapshotText(200), { ...LIMITS, maxSessions: 100 });
    expect(over).toEqual({ ok: false, message: 'snapshot: 202 sessions exceed the limit of 100' });
    const small = thread.read(JSON.stringify({ type: 'events', events: [] }), LIMITS);
    expect(small).not.toBeInstanceOf(Promise);
    expect(small).toEqual({ ok: true, frame: { type: 'events', events: [], rejected: [] } });
  });

  it('parses here what a worker that died still owed, and starts a new worker for the next big frame', async () => {
    const thread = started();
    const first = snapshotText(2000, 1);
    await thread.read(first, LIMITS);
    const worker = (thread as unknown as { worker: Worker }).worker;
    // One owed as text, one as the bytes it came in.
    const owed = [snapshotText(2000, 2), Buffer.from(snapshotText(2000, 3))].map((frame) =>
      Promise.resolve(thread.read(frame, LIMITS)),
    );
    await worker.terminate();
    const results = await Promise.all(owed);
    expect(results.map((r) => r.ok && r.frame.type === 'snapshot' && r.frame.seq)).toEqual([2, 3]);
    const next = await thread.read(snapshotText(2000, 4), LIMITS);
    expect(next.ok && next.frame.type === 'snapshot' && next.frame.seq).toBe(4);
    expect((thread as unknown as { worker: Worker }).worker).not.toBe(worker);
  });
});
