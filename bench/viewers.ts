/**
 * The viewers part: another farm's acks while people watch a big farm's page. The status page polls
 * `/api/v1/farms/<farm>` every second; for a 10,000-session farm that document is megabytes of JSON.
 * A probe agent of a small farm times its acks (bench/probe.ts, its own process) with no viewer, then
 * with 1 and with 4 viewers of the big farm (each in a process of its own, polling every second as
 * the page does). Target: the probe's ack p99 with viewers within 2x of none.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { type RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/free-port.js';
import { TestAgent } from '../test/support/agent-client.js';
import { latencySummary, quantile, section, sha256, startCollector } from './common.js';
import { Probe } from './fleet.js';

export interface ViewersOptions {
  /** Sessions of the watched farm. */
  sessions: number;
  /** Seconds per phase. */
  seconds: number;
  /** Connections per page the viewers ask for (the API's default is 1000). */
  limit: number;
}

const HOST_SESSIONS = 1000;

/** `viewers` processes polling `url` every second for `seconds`; resolves with the bytes of the last answer. */
async function watch(url: string, viewers: number, seconds: number): Promise<number> {
  const script = `
    const url = ${JSON.stringify(url)};
    const deadline = Date.now() + ${seconds * 1000};
    let bytes = 0;
    while (Date.now() < deadline) {
      const started = Date.now();
      const body = await fetch(url).then((r) => r.arrayBuffer());
      bytes = body.byteLength;
      await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
    }
    console.log(bytes);
  `;
  const children = Array.from({ length: viewers }, () =>
    spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  const sizes = await Promise.all(
    children.map(
      (child) =>
        new Promise<number>((resolve, reject) => {
          let out = '';
          child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
          child.once('exit', (code) =>
            code === 0 ? resolve(Number(out.trim())) : reject(new Error(`viewer exited ${code}`)),
          );
        }),
    ),
  );
  return sizes[0] ?? 0;
}

export async function runViewers(redis: RedisServer, options: ViewersOptions): Promise<void> {
  const { sessions, seconds, limit } = options;
  section(
    `viewers: another farm's acks while 0, 1 and 4 viewers poll a ${sessions}-session farm's document (${limit} connections a page) every second`,
  );
  const client = redis.client();
  await client.flushall();
  const collector = await startCollector(
    {
      redis: { url: redis.url, prefix: 'viewers' },
      limits: { maxSessions: HOST_SESSIONS },
      farms: [
        {
          id: 'big',
          seats: sessions,
          license: 'primary',
          expires: '2030-01-01T00:00:00Z',
          agentTokensSha256: [sha256('token-big')],
        },
        {
          id: 'probe',
          seats: 10,
          license: 'primary',
          expires: '2030-01-01T00:00:00Z',
          agentTokensSha256: [sha256('token-probe')],
        },
      ],
    },
    await freePort(),
  );
  const agents: TestAgent[] = [];
  let probe: Probe | undefined;
  try {
    for (let h = 0; h * HOST_SESSIONS < sessions; h++) {
      const agent = await TestAgent.connect(collector.url, 'token-big');
      await agent.hello('big', `rdsh-${h}`);
      const count = Math.min(HOST_SESSIONS, sessions - h * HOST_SESSIONS);
      await agent.snapshot(
        1,
        Array.from({ length: count }, (_, i) => ({
          id: `${i}`,
          user: `corp\\user-${h}-${i}`,
          admin: false,
          kind: 'desktop' as const,
          via: 'ras' as const,
          state: 'active' as const,
          since: 1,
          client: { name: `client-${i}`, address: '10.0.0.1' },
        })),
      );
      agents.push(agent);
    }
    probe = await Probe.connect(collector.url, 'token-probe', 'probe');
    const document = `${collector.url}/api/v1/farms/big?limit=${limit}`;
    const p99s: number[] = [];
    for (const viewers of [0, 1, 4]) {
      probe.start();
      const bytes = viewers === 0 ? (await sleep(seconds * 1000), 0) : await watch(document, viewers, seconds);
      const timed = await probe.stop();
      const sorted = [...timed.latencies].sort((a, b) => a - b);
      p99s.push(quantile(sorted, 0.99));
      const size = viewers === 0 ? '' : `, document ${(bytes / 2 ** 20).toFixed(1)} MiB`;
      console.log(`${viewers} viewer(s)${size}: probe ack ${latencySummary(timed.latencies)}`);
    }
    const [none, one, four] = p99s as [number, number, number];
    const target = (p99: number) => (p99 <= 2 * Math.max(none, 1) ? 'within 2x: met' : 'over 2x: NOT met');
    console.log(
      `probe ack p99: ${none.toFixed(1)} ms with none, ${one.toFixed(1)} ms with 1 viewer (${target(one)}), ${four.toFixed(1)} ms with 4 (${target(four)}); target: within 2x of none`,
    );
    await sleep(100);
  } finally {
    await probe?.close();
    await Promise.all(agents.map((agent) => agent.close()));
    client.disconnect();
    await collector.stop();
  }
}
