/**
 * Ground truth for end-to-end agent tests: a seeded `SessionSimulator` whose sessions are written,
 * atomically, to a JSON file that the agent's `command` source reads with `cat`. The test moves the
 * simulated clock; the agent only ever sees whole lists.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Session } from '@rasmon/protocol';
import { SessionSimulator, type SimulationOptions } from '@rasmon/agent';

export class SimulatedHost {
  readonly sim: SessionSimulator;
  readonly sessionsPath: string;
  private writes = 0;

  /** `dir` holds sessions.json; the host starts written, `startMs` six hours in the past. */
  constructor(
    readonly dir: string,
    options: Partial<SimulationOptions> & { seed: number; host: string },
  ) {
    this.sessionsPath = join(dir, 'sessions.json');
    const admins = options.admins ?? ['CORP\\admin01', 'CORP\\admin02', 'CORP\\admin03'];
    this.sim = new SessionSimulator({
      users: [...Array.from({ length: 30 }, (_, i) => `CORP\\User${String(i + 1).padStart(3, '0')}`), ...admins],
      admins,
      targetSessions: 16,
      // High churn: a 30 s step brings several logons, logoffs, disconnects and reconnects.
      logonsPerMinute: 16,
      startMs: Date.now() - 6 * 3_600_000,
      ...options,
    });
    this.write();
  }

  /** The agent's `command`: prints the current list (through the shell). */
  get command(): string {
    return `cat '${this.sessionsPath}'`;
  }

  /** The truth now. */
  sessions(): Session[] {
    return this.sim.sessions();
  }

  /** Advances the simulated clock by `ms` and publishes the new list; returns it. */
  step(ms = 30_000): Session[] {
    this.sim.advanceTo(this.sim.now + ms);
    return this.write();
  }

  /** Publishes the current list: write a temporary file, then rename over the old one. */
  write(): Session[] {
    const sessions = this.sim.sessions();
    const tmp = `${this.sessionsPath}.${(this.writes += 1)}.tmp`;
    writeFileSync(tmp, JSON.stringify(sessions));
    renameSync(tmp, this.sessionsPath);
    return sessions;
  }
}
