/**
 * Ingest: events per second from agents through the collector into one Redis, with every event a
 * real change — logons, logoffs and sessions going active or disconnected on a farm that does not
 * count disconnected sessions, each event its own session object. Beside it, measured in the same
 * run against the same Redis: redis-benchmark's HSET ceiling and the cost of an EVALSHA of an empty
 * script; with --profile, the Redis calls and Lua time per event from INFO commandstats.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Session } from '@rasmon/protocol';
import { TestAgent, hostKeyOf } from '../test/support/agent-client.js';
import { type RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/free-port.js';
import { latencySummary, random, redisBenchmark, rssKiB, section, sha256, startCollector } from './common.js';

export interface IngestOptions {
  hosts: number;
  seconds: number;
  batch: number;
  window: number;
  sessions: number;
  profile: boolean;
}

/** One simulated host: its sessions now, and the next change to make to them. */
class HostSessions {
  private readonly live: Session[] = [];
  private nextId = 0;
  private readonly rand: () => number;

  constructor(
    private readonly host: number,
    private readonly target: number,
  ) {
    this.rand = random(host + 1);
    for (let i = 0; i < target; i += 1) this.live.push(this.logon());
  }

  get sessions(): Session[] {
    return this.live.map((s) => ({ ...s }));
  }

  private logon(): Session {
    const id = String((this.nextId += 1));
    return {
      id,
      user: `corp\\user${Math.floor(this.rand() * 5000)}`,
      admin: this.rand() < 0.02,
      kind: this.rand() < 0.8 ? 'desktop' : 'app',
      via: 'ras',
      state: 'active',
      since: 1_700_000_000_000 + this.host * 1_000_000 + this.nextId,
    };
  }

  /** One event that changes what the license counts: a logon, a logoff, or a state change. */
  event(seq: number): Record<string, unknown> {
    const at = Date.now();
    const r = this.rand();
    const size = this.live.length;
    if ((r < 1 / 3 && size < this.target * 1.2) || size < this.target * 0.8) {
      const s = this.logon();
      this.live.push(s);
      return { seq, at, op: 'upsert', session: { ...s } };
    }
    const index = Math.floor(this.rand() * size);
    if (r < 2 / 3) {
      const [gone] = this.live.splice(index, 1);
      return { seq, at, op: 'end', id: gone!.id };
    }
    const s = this.live[index]!;
    s.state = s.state === 'active' ? 'disconnected' : 'active';
    return { seq, at, op: 'upsert', session: { ...s } };
  }
}

function commandStats(info: string): Map<string, { calls: number; usec: number }> {
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    stats.set(match[1]!, { calls: Number(match[2]), usec: Number(match[3]) });
  }
  return stats;
}

export async function runIngest(redis: RedisServer, options: IngestOptions): Promise<void> {
  section('ingest');
  const { hosts, seconds, batch, window, sessions } = options;
  const token = 'bench-token';
  const client = redis.client();
  await client.flushall();
  const collector = await startCollector(
    {
      redis: { url: redis.url, prefix: 'ingest' },
      farms: [
        {
          id: 'bench',
          seats: 100_000,
          license: 'primary',
          expires: '2030-01-01T00:00:00Z',
          countDisconnected: false,
          agentTokensSha256: [sha256(token)],
        },
      ],
    },
    await freePort(),
  );
  try {
    const hset = redisBenchmark(redis.port, ['-t', 'hset']);
    const emptySha = (await client.script('LOAD', 'return 0')) as string;
    const empty = redisBenchmark(redis.port, ['evalsha', emptySha, '0']);
    console.log(`Redis ceiling: HSET ${hset ?? '?'} /s; EVALSHA of an empty script ${empty ?? '?'} /s`);

    const slots = await Promise.all(
      Array.from({ length: hosts }, async (_, h) => {
        const agent = await TestAgent.connect(collector.url, token);
        await agent.hello('bench', `rdsh-${h}`, `bench-${h}`, undefined, hostKeyOf(`bench/${h}`));
        const host = new HostSessions(h, sessions);
        await agent.snapshot(1, host.sessions);
        return { agent, host, seq: 1 };
      }),
    );

    await client.config('RESETSTAT');
    let events = 0;
    const latencies: number[] = [];
    const started = Date.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
      slots.map(async (slot) => {
        const inFlight: Array<{ seq: number; sent: number }> = [];
        slot.agent.socket.on('message', (data) => {
          const frame = JSON.parse(data.toString()) as { type: string; seq?: number };
          if (frame.type !== 'ack') return;
          while (inFlight.length > 0 && inFlight[0]!.seq <= frame.seq!) {
            latencies.push(Date.now() - inFlight.shift()!.sent);
            events += batch;
          }
        });
        while (Date.now() < deadline) {
          if (inFlight.length >= window) {
            await sleep(0);
            continue;
          }
          const frame = [];
          for (let k = 0; k < batch; k += 1) frame.push(slot.host.event((slot.seq += 1)));
          inFlight.push({ seq: slot.seq, sent: Date.now() });
          slot.agent.send({ type: 'events', events: frame });
        }
        while (inFlight.length > 0) await sleep(5);
      }),
    );
    const elapsed = (Date.now() - started) / 1000;
    const stats = commandStats(await client.info('commandstats'));
    const rate = events / elapsed;
    console.log(
      [
        `${hosts} hosts, ${sessions} sessions each, ${batch} events per frame (logons, logoffs, state changes), ${window} frames in flight per host`,
        `events applied: ${events} in ${elapsed.toFixed(1)} s = ${Math.round(rate)} events/s` +
          (hset ? ` = ${(rate / hset).toFixed(3)} x the HSET ceiling` : ''),
        `frame ack latency: ${latencySummary(latencies)}`,
        `collector RSS: ${(rssKiB(collector.process.pid!) / 1024).toFixed(0)} MiB`,
      ].join('\n'),
    );
    if (options.profile) {
      const scripts = ['evalsha', 'eval'].map((name) => stats.get(name) ?? { calls: 0, usec: 0 });
      const scriptCalls = scripts.reduce((sum, s) => sum + s.calls, 0);
      const scriptUsec = scripts.reduce((sum, s) => sum + s.usec, 0);
      const inner = [...stats].filter(([name]) => !['evalsha', 'eval', 'config', 'info', 'script'].includes(name));
      const innerCalls = inner.reduce((sum, [, s]) => sum + s.calls, 0);
      const top = inner
        .sort((a, b) => b[1].calls - a[1].calls)
        .slice(0, 10)
        .map(([name, s]) => `${name} ${(s.calls / events).toFixed(2)}`)
        .join(', ');
      console.log(
        [
          `profile: ${(innerCalls / events).toFixed(2)} Redis calls per event (${top})`,
          `profile: ${scriptCalls} script calls, Lua ${(scriptUsec / events).toFixed(2)} µs per event, ${(scriptUsec / scriptCalls).toFixed(0)} µs per call` +
            (empty ? ` (an empty script: ${(1e6 / empty).toFixed(1)} µs of throughput)` : ''),
          `profile: Redis busy in scripts ${((scriptUsec / 1e6 / elapsed) * 100).toFixed(0)} % of the run`,
        ].join('\n'),
      );
    }
    await Promise.all(slots.map((slot) => slot.agent.close()));
  } finally {
    client.disconnect();
    await collector.stop();
  }
}
