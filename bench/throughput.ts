/**
 * `npm run bench`: events per second from agents through the collector into one Redis, frame ack
 * latency and collector memory, beside that Redis's own ceiling measured in the same run. Agents run
 * in this process, the collector in its own (the real bin), Redis in its own; all on loopback.
 *
 *   npm run bench -- [--hosts 20] [--seconds 10] [--batch 500] [--window 2]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { RedisServer, freePort } from '../test/support/redis-server.js';
import { TestAgent, session } from '../test/support/agent-client.js';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' },
    batch: { type: 'string', default: '500' },
    window: { type: 'string', default: '2' },
    sessions: { type: 'string', default: '200' },
  },
});
const HOSTS = Number(values.hosts);
const SECONDS = Number(values.seconds);
const BATCH = Number(values.batch);
const WINDOW = Number(values.window);
const SESSIONS = Number(values.sessions);

function redisCeiling(port: number): string {
  try {
    const out = execFileSync('redis-benchmark', ['-p', String(port), '-q', '-t', 'set,hset', '-n', '200000', '-P', '16', '-c', '20'], {
      encoding: 'utf8',
    });
    return out
      .split(/\r|\n/)
      .filter((line) => /requests per second/.test(line))
      .map((line) => line.trim())
      .join('; ');
  } catch {
    return 'redis-benchmark not available';
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function main(): Promise<void> {
  const redis = await RedisServer.start();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-bench-'));
  const configPath = join(dir, 'collector.json');
  const token = 'bench-token';
  writeFileSync(
    configPath,
    JSON.stringify({
      listen: `127.0.0.1:${port}`,
      redis: { url: redis.url, prefix: 'bench' },
      farms: [
        {
          id: 'bench',
          seats: 100_000,
          license: 'primary',
          expires: '2030-01-01T00:00:00Z',
          agentTokensSha256: [createHash('sha256').update(token).digest('hex')],
        },
      ],
    }),
  );
  const bin = new URL('../../../collector/bin/rasmon-collector.js', import.meta.url).pathname;
  const collector = spawn(process.execPath, [bin, '--config', configPath], {
    stdio: 'ignore',
    env: { ...process.env, RASMON_LOG_LEVEL: 'warn' },
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i += 1) {
      if (i > 200 || collector.exitCode !== null) throw new Error('collector did not become ready');
      const ready = await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false);
      if (ready) break;
      await sleep(50);
    }
    console.log(`Redis ceiling (redis-benchmark, same machine): ${redisCeiling(redis.port)}`);

    const agents = await Promise.all(
      Array.from({ length: HOSTS }, async (_, h) => {
        const agent = await TestAgent.connect(url, token);
        await agent.hello('bench', `rdsh-${h}`, `bench-${h}`);
        const sessions = Array.from({ length: SESSIONS }, (_, i) =>
          session(String(i), `corp\\user${(h * SESSIONS + i) % 5000}`, { admin: i % 50 === 0 }),
        );
        await agent.snapshot(1, sessions);
        return { agent, sessions, seq: 1 };
      }),
    );

    let events = 0;
    const latencies: number[] = [];
    const deadline = Date.now() + SECONDS * 1000;
    const started = Date.now();
    await Promise.all(
      agents.map(async (slot) => {
        const inFlight: Array<{ seq: number; sent: number }> = [];
        slot.agent.socket.on('message', (data) => {
          const frame = JSON.parse(data.toString()) as { type: string; seq?: number };
          if (frame.type !== 'ack') return;
          while (inFlight.length > 0 && inFlight[0]!.seq <= frame.seq!) {
            latencies.push(Date.now() - inFlight.shift()!.sent);
            events += BATCH;
          }
        });
        let i = 0;
        while (Date.now() < deadline) {
          if (inFlight.length >= WINDOW) {
            await sleep(0);
            continue;
          }
          const batch = [];
          for (let k = 0; k < BATCH; k += 1) {
            const base = slot.sessions[(i += 1) % slot.sessions.length]!;
            const state = base.state === 'active' ? 'disconnected' : 'active';
            base.state = state;
            batch.push({ seq: (slot.seq += 1), at: Date.now(), op: 'upsert', session: base });
          }
          inFlight.push({ seq: slot.seq, sent: Date.now() });
          slot.agent.send({ type: 'events', events: batch });
        }
        while (inFlight.length > 0) await sleep(5);
      }),
    );
    const elapsed = (Date.now() - started) / 1000;
    const rss = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(collector.pid)], { encoding: 'utf8' }).trim()) / 1024;
    latencies.sort((a, b) => a - b);
    console.log(
      [
        `hosts ${HOSTS}, ${SESSIONS} sessions each, ${BATCH} events per frame, ${WINDOW} frames in flight per host`,
        `events applied: ${events} in ${elapsed.toFixed(1)} s = ${Math.round(events / elapsed)} events/s`,
        `frame ack latency: p50 ${quantile(latencies, 0.5)} ms, p99 ${quantile(latencies, 0.99)} ms, max ${latencies.at(-1)} ms`,
        `collector RSS: ${rss.toFixed(0)} MiB`,
      ].join('\n'),
    );
    await Promise.all(agents.map((slot) => slot.agent.close()));
  } finally {
    collector.kill('SIGTERM');
    await new Promise((resolve) => collector.once('exit', resolve));
    await redis.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
