/**
 * The events the agent writes to the Windows Application log under the source `rasmon-agent`: the
 * one place their ids are defined (the table of docs/agent.md is this list). Ids are stable: monitoring
 * rules (SCOM, Splunk, Sentinel) match on them. 1xxx: the service itself; 2xxx: the collector;
 * 3xxx: the session source.
 */

export const EVENT_SOURCE = 'rasmon-agent';

/** ReportEventW's wType. */
export const EventType = { error: 0x0001, warning: 0x0002, information: 0x0004 } as const;
export type EventLevel = keyof typeof EventType;

export interface EventDefinition {
  readonly id: number;
  readonly level: EventLevel;
  /** What happened, as the first line of the event's text. */
  readonly summary: string;
  /** What the administrator does about it (docs/agent.md's table). */
  readonly action: string;
}

export const EVENTS = {
  serviceStarted: {
    id: 1000,
    level: 'information',
    summary: 'The rasmon agent service started.',
    action: 'None.',
  },
  serviceStopped: {
    id: 1001,
    level: 'information',
    summary: 'The rasmon agent service stopped; its spool is flushed to disk.',
    action: 'None, unless nobody stopped it: then see the events before it.',
  },
  serviceFailed: {
    id: 1002,
    level: 'error',
    summary: 'The rasmon agent service could not start or stopped on an error.',
    action: 'Read the reason in the event; run `rasmon-agent.exe check --config FILE` as an administrator.',
  },
  stopTimedOut: {
    id: 1003,
    level: 'warning',
    summary: 'The agent did not finish stopping within the time it announced; the service stopped anyway.',
    action: 'None: the spool is written before each send, so nothing is lost; the next start sends it.',
  },
  tokenRefused: {
    id: 2001,
    level: 'error',
    summary: 'The collector refused the agent token (HTTP 401): this host reports nothing.',
    action: "Put the farm's current token in the token file, then restart the service.",
  },
  collectorUnreachable: {
    id: 2002,
    level: 'warning',
    summary: 'The collector has been unreachable for a while; events are kept in the spool.',
    action: 'Check the network path and the collector; the agent keeps retrying on its own.',
  },
  collectorConnected: {
    id: 2003,
    level: 'information',
    summary: 'The agent is connected to the collector again after event 2001, 2002 or 2004.',
    action: 'None.',
  },
  helloRefused: {
    id: 2004,
    level: 'error',
    summary: "The collector refused this host's connection (forbidden): this host reports nothing.",
    action:
      "Read the reason in the event. A host bound to another agent's host key, after this server was re-imaged or its agent reinstalled: run `rasmon-collector rebind-host --farm F --host H` on a collector. Otherwise correct `farm` or `host` in the configuration, or the farm's host patterns.",
  },
  sourceFailing: {
    id: 3001,
    level: 'error',
    summary: "The session source has failed several polls in a row: the collector keeps this host's last list.",
    action: 'Read the reason in the event; run `rasmon-agent.exe sessions --config FILE` to reproduce it.',
  },
  sourceRecovered: {
    id: 3002,
    level: 'information',
    summary: 'The session source reads sessions again after event 3001.',
    action: 'None.',
  },
} as const satisfies Record<string, EventDefinition>;

export type EventName = keyof typeof EVENTS;

/** The table as docs/agent.md shows it, in id order (agent/test/admin-alerts.test.ts compares against this). */
export function eventTable(): string {
  const rows = Object.values(EVENTS)
    .sort((a, b) => a.id - b.id)
    .map((e) => `| ${e.id} | ${e.level} | ${e.summary} | ${e.action} |`);
  return ['| Id | Level | Meaning | What to do |', '|---|---|---|---|', ...rows].join('\n');
}
