import { describe, expect, it } from 'vitest';
import { parseCollectorFrame } from '../src/index.js';

const limits = { maxFrameBytes: 1_048_576, maxEvents: 1000, maxSessions: 2000 };

describe('collector frames as an agent validates them', () => {
  it('accepts a welcome with features and fields it does not know, and drops the unknown ones', () => {
    const result = parseCollectorFrame(
      JSON.stringify({ type: 'welcome', ack: 7, heartbeatSeconds: 15, limits, features: ['status'], future: { x: 1 } }),
    );
    expect(result).toEqual({
      kind: 'frame',
      frame: { type: 'welcome', ack: 7, heartbeatSeconds: 15, limits, features: ['status'] },
    });
  });

  it('accepts acks with rejections, resync and error', () => {
    expect(parseCollectorFrame('{"type":"ack","seq":3,"rejected":[{"seq":2,"reason":"bad","id":"s"}]}').kind).toBe(
      'frame',
    );
    expect(parseCollectorFrame('{"type":"resync"}').kind).toBe('frame');
    expect(parseCollectorFrame('{"type":"error","code":"superseded","message":"newer"}').kind).toBe('frame');
  });

  it.each([
    ['null', 'null'],
    ['a number', '12'],
    ['no type', '{}'],
    ['a seq that is not a safe integer', '{"type":"ack","seq":9007199254740993}'],
    ['a fractional seq', '{"type":"ack","seq":1.5}'],
    ['a heartbeat overflowing timers', JSON.stringify({ type: 'welcome', ack: 0, heartbeatSeconds: 1e12, limits })],
    [
      'a frame limit below 4 KiB',
      JSON.stringify({ type: 'welcome', ack: 0, heartbeatSeconds: 15, limits: { ...limits, maxFrameBytes: 1 } }),
    ],
    [
      'a frame limit above 16 MiB',
      JSON.stringify({ type: 'welcome', ack: 0, heartbeatSeconds: 15, limits: { ...limits, maxFrameBytes: 1e15 } }),
    ],
    ['a welcome without limits', JSON.stringify({ type: 'welcome', ack: 0, heartbeatSeconds: 15 })],
    ['rejections that are not a list', '{"type":"ack","seq":1,"rejected":{}}'],
  ])('refuses %s', (_what, text) => {
    expect(parseCollectorFrame(text).kind).toBe('invalid');
  });

  it('reports an unknown type, cut short, without validating it', () => {
    expect(parseCollectorFrame(JSON.stringify({ type: 'z'.repeat(500) }))).toEqual({
      kind: 'unknown',
      type: 'z'.repeat(40),
    });
    expect(parseCollectorFrame('{"type":"constructor"}')).toEqual({ kind: 'unknown', type: 'constructor' });
  });
});
