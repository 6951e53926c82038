import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AdminAlerts } from '../src/windows/admin-alerts.js';
import { eventTable, EVENTS, type EventName } from '../src/windows/event-ids.js';

describe('Event Log alerts: one event per condition, not one per retry', () => {
  let reported: Array<[EventName, string | undefined]>;
  let alerts: AdminAlerts;
  beforeEach(() => {
    vi.useFakeTimers();
    reported = [];
    alerts = new AdminAlerts((name, detail) => reported.push([name, detail]), {
      unreachableAfterMs: 60_000,
      sourceFailuresInARow: 3,
    });
  });
  afterEach(() => {
    alerts.close();
    vi.useRealTimers();
  });

  it('a refused token is reported once across reconnects, and its end when the collector welcomes again', () => {
    alerts.disconnected();
    for (let i = 0; i < 5; i += 1) alerts.tokenRefused();
    vi.advanceTimersByTime(120_000);
    // Refused explains the silence: no unreachable event on top.
    expect(reported.map(([name]) => name)).toEqual(['tokenRefused']);
    alerts.connected();
    expect(reported.map(([name]) => name)).toEqual(['tokenRefused', 'collectorConnected']);
  });

  it("a refused hello is reported once with the collector's reason, and its end when the collector welcomes again", () => {
    alerts.disconnected();
    const reason =
      "host rdsh-1 of farm farm-a is bound to another agent's host key (rasmon-collector rebind-host frees it for a re-imaged host)";
    for (let i = 0; i < 5; i += 1) alerts.helloRefused(reason);
    vi.advanceTimersByTime(120_000);
    expect(reported).toEqual([['helloRefused', reason]]);
    alerts.connected();
    expect(reported.map(([name]) => name)).toEqual(['helloRefused', 'collectorConnected']);
  });

  it('unreachable after the configured time without a connection, once; a quick reconnect says nothing', () => {
    alerts.disconnected();
    vi.advanceTimersByTime(30_000);
    alerts.connected();
    alerts.disconnected();
    vi.advanceTimersByTime(59_000);
    expect(reported).toEqual([]);
    vi.advanceTimersByTime(2000);
    alerts.disconnected();
    vi.advanceTimersByTime(120_000);
    expect(reported.map(([name]) => name)).toEqual(['collectorUnreachable']);
    alerts.connected();
    alerts.connected();
    expect(reported.map(([name]) => name)).toEqual(['collectorUnreachable', 'collectorConnected']);
  });

  it('the source failing several polls in a row, once, with the last reason; its recovery once', () => {
    alerts.polled(new Error('one'));
    alerts.polled();
    alerts.polled(new Error('a'));
    alerts.polled(new Error('b'));
    expect(reported).toEqual([]);
    alerts.polled(new Error('quser could not run: timed out'));
    alerts.polled(new Error('d'));
    expect(reported).toEqual([['sourceFailing', '3 polls failed in a row; the last: quser could not run: timed out']]);
    alerts.polled();
    alerts.polled();
    expect(reported.map(([name]) => name)).toEqual(['sourceFailing', 'sourceRecovered']);
  });
});

describe('event ids', () => {
  it('are unique, grouped by subject, and docs/agent.md lists exactly this table', () => {
    const ids = Object.values(EVENTS).map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const event of Object.values(EVENTS)) expect(event.id).toBeGreaterThanOrEqual(1000);
    const doc = readFileSync(new URL('../../docs/agent.md', import.meta.url), 'utf8');
    expect(doc).toContain(eventTable());
  });
});
