/**
 * A planned collector restart under a fleet that reaches it from one address, as agents behind a
 * TCP load balancer do: N agents (raw ws sockets, all from 127.0.0.1) connected and welcomed, then
 * the collector's real bin gets SIGTERM and is started again at once on the same port. Each
 * simulated agent reconnects by the agent's own policy (`reconnectDelay` of
 * agent/src/link/reconnect-delay.ts, the function agent/src/link/collector-link.ts calls): a
 * spread delay after 1001, Retry-After after 429, exponential backoff otherwise.
 *
 * Measures, from the SIGTERM: the time until every agent is welcomed again, the upgrade refusals by
 * status, the closes by code, and from /metrics once a second the hosts with `ras_agent_up` 0 and
 * `ras_license_users_unverified`. The fleet is connected under raised limits (setting it up is not
 * the point); the collector that is restarted runs with the limits of the variant.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { reconnectDelay, parseRetryAfter, DEFAULT_RECONNECT_POLICY, type Disconnect } from '@rasmon/agent';
import type { CollectorFrame } from '@rasmon/protocol';
import { hostKeyOf } from '../test/support/agent-client.js';
import { freePort, type RedisServer } from '../test/support/redis-server.js';
import { pool, section, sha256, startCollector, type RunningCollector } from './common.js';

export interface RestartOptions {
  agents: number;
  farms: number;
  /** How long to wait for the fleet to be back before giving up, s. */
  giveUpSeconds: number;
}

/** The collector's defaults (collector/src/config/config.ts) for the per-address upgrade limit. */
const DEFAULT_UPGRADE_LIMITS = { upgradesPerSecondPerAddress: 50, upgradeBurstPerAddress: 500 };
const SESSIONS_PER_HOST = 5;
const TARGET_SECONDS = 30;
/** RasAgentDown fires after a host has been down this long (deploy/prometheus/rules/rasmon-alerts.yml). */
const AGENT_DOWN_FOR_SECONDS = 300;

const farmId = (f: number) => `farm-${f}`;
const token = (f: number) => `token-${f}`;

interface Tally {
  refusals: Map<number, number>;
  closes: Map<number, number>;
  connectErrors: number;
}

/** One simulated agent: hello, a snapshot when asked, and reconnects as the real agent does. */
class SimAgent {
  private socket: WebSocket | undefined;
  private attempt = 0;
  private ended: Disconnect = { kind: 'failed' };
  private seq = 1;
  welcomedAt = 0;
  stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly f: number,
    private readonly h: number,
    private readonly tally: Tally,
  ) {}

  /** Connects now; resolves at the first welcome or rejects at the first failure (setup only). */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`${this.url.replace(/^http/, 'ws')}/v1/agent`, ['rasmon.v1'], {
        headers: { Authorization: `Bearer ${token(this.f)}` },
        perMessageDeflate: false,
      });
      this.socket = socket;
      this.ended = { kind: 'failed' };
      socket.on('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        this.tally.refusals.set(status, (this.tally.refusals.get(status) ?? 0) + 1);
        this.ended = { kind: 'refused', status, retryAfterMs: parseRetryAfter(res.headers['retry-after']) };
        res.resume();
        socket.terminate();
        reject(new Error(`upgrade refused with ${status}`));
      });
      let opened = false;
      socket.on('error', () => {
        if (!opened && this.ended.kind === 'failed') this.tally.connectErrors += 1;
        reject(new Error('connection error'));
      });
      socket.on('open', () => {
        opened = true;
        socket.send(
          JSON.stringify({
            type: 'hello',
            farm: farmId(this.f),
            host: `rdsh-${this.h}`,
            stream: `stream-${this.f}-${this.h}`,
            hostKey: hostKeyOf(`${this.f}/${this.h}`),
          }),
        );
      });
      socket.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as CollectorFrame;
        if (frame.type === 'welcome') {
          this.welcomedAt = Date.now();
          this.seq = Math.max(this.seq, frame.ack);
          resolve();
        } else if (frame.type === 'resync') {
          this.seq += 1;
          socket.send(JSON.stringify({ type: 'snapshot', seq: this.seq, at: Date.now(), sessions: this.sessions() }));
        }
      });
      socket.on('close', (code) => {
        if (this.socket === socket) this.socket = undefined;
        // Refusals and failed connects are counted above, not again as the 1006 they end with.
        if (opened) this.tally.closes.set(code, (this.tally.closes.get(code) ?? 0) + 1);
        if (code === 1001) this.ended = { kind: 'drained' };
        reject(new Error(`closed ${code}`));
        this.scheduleReconnect();
      });
    });
  }

  /** The first connection: hello and a snapshot, so the host holds users the restart must keep. */
  async setUp(): Promise<void> {
    this.stopped = true;
    await this.connect();
    this.socket!.send(JSON.stringify({ type: 'snapshot', seq: 1, at: Date.now(), sessions: this.sessions() }));
    this.stopped = false;
  }

  private sessions() {
    return Array.from({ length: SESSIONS_PER_HOST }, (_, i) => ({
      id: String(i + 1),
      user: `corp\\user${this.h * SESSIONS_PER_HOST + i}`,
      admin: false,
      kind: 'desktop',
      via: 'ras',
      state: 'active',
      since: 1_700_000_000_000 + this.h * 100 + i,
    }));
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const plan = reconnectDelay(this.ended, this.attempt, DEFAULT_RECONNECT_POLICY);
    this.attempt = plan.attempt;
    this.timer = setTimeout(() => void this.connect().catch(() => undefined), plan.delayMs);
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.socket?.terminate();
  }
}

/** From one /metrics body: hosts with ras_agent_up 0, and the sum of ras_license_users_unverified. */
function health(body: string): { down: number; unverified: number } {
  const down = body.match(/^ras_agent_up\{[^}]*\} 0$/gm)?.length ?? 0;
  let unverified = 0;
  for (const [, value] of body.matchAll(/^ras_license_users_unverified\{[^}]*\} (\S+)$/gm)) unverified += Number(value);
  return { down, unverified };
}

function config(redisUrl: string, farms: number, limits: Record<string, number>) {
  return {
    redis: { url: redisUrl, prefix: 'restart' },
    limits,
    farms: Array.from({ length: farms }, (_, f) => ({
      id: farmId(f),
      seats: 100_000,
      license: 'primary',
      expires: '2030-01-01T00:00:00Z',
      agentTokensSha256: [sha256(token(f))],
    })),
  };
}

const count = (map: Map<number, number>, key: number) => map.get(key) ?? 0;
const byKey = (map: Map<number, number>) =>
  [...map]
    .sort(([a], [b]) => a - b)
    .map(([key, n]) => `${key}: ${n}`)
    .join(', ') || 'none';

/** One restart with the restarted collector's upgrade limits `limits`, labelled `label`. */
async function restartOnce(
  redis: RedisServer,
  options: RestartOptions,
  label: string,
  limits: Record<string, number>,
): Promise<void> {
  const { agents: total, farms } = options;
  section(
    `restart, ${label}: ${total} agents from one address, upgradesPerSecondPerAddress ${limits.upgradesPerSecondPerAddress}, upgradeBurstPerAddress ${limits.upgradeBurstPerAddress}`,
  );
  const client = redis.client();
  await client.flushall();
  const port = await freePort();
  const tally: Tally = { refusals: new Map(), closes: new Map(), connectErrors: 0 };
  let collector: RunningCollector = await startCollector(
    config(redis.url, farms, { upgradesPerSecondPerAddress: 100_000, upgradeBurstPerAddress: 1_000_000 }),
    port,
  );
  const fleet = Array.from(
    { length: total },
    (_, i) => new SimAgent(collector.url, i % farms, Math.floor(i / farms), tally),
  );
  try {
    await pool(fleet, 100, (agent) => agent.setUp());
    await sleep(2000);
    tally.closes.clear();
    for (const agent of fleet) agent.welcomedAt = 0;

    const t0 = Date.now();
    await collector.stop();
    const stoppedMs = Date.now() - t0;
    collector = await startCollector(config(redis.url, farms, limits), port);
    const readyMs = Date.now() - t0;

    let maxDown = 0;
    let maxUnverified = 0;
    let lastDownAt = 0;
    let back = 0;
    const giveUpAt = t0 + options.giveUpSeconds * 1000;
    while (Date.now() < giveUpAt) {
      const body = await fetch(`${collector.url}/metrics`).then(
        (r) => r.text(),
        () => '',
      );
      const seen = health(body);
      maxDown = Math.max(maxDown, seen.down);
      maxUnverified = Math.max(maxUnverified, seen.unverified);
      if (seen.down > 0 || seen.unverified > 0) lastDownAt = Date.now();
      back = fleet.filter((agent) => agent.welcomedAt > t0).length;
      if (back === total && seen.down === 0 && seen.unverified === 0) break;
      await sleep(1000);
    }
    const lastBackMs = Math.max(...fleet.map((agent) => agent.welcomedAt)) - t0;
    const allBack = back === total;
    const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(
      `collector drained and exited in ${seconds(stoppedMs)}; the new one was ready ${seconds(readyMs)} after SIGTERM`,
    );
    console.log(
      allBack
        ? `all ${total} agents welcomed again ${seconds(lastBackMs)} after SIGTERM (target ≤ ${TARGET_SECONDS} s: ${lastBackMs <= TARGET_SECONDS * 1000 ? 'met' : 'missed'})`
        : `only ${back} of ${total} agents back after ${options.giveUpSeconds} s (target ≤ ${TARGET_SECONDS} s: missed)`,
    );
    const floorSeconds = Math.max(0, (total - limits.upgradeBurstPerAddress!) / limits.upgradesPerSecondPerAddress!);
    console.log(
      `  the upgrade limit alone lets ${total} agents from one address in no sooner than ${floorSeconds.toFixed(0)} s (burst ${limits.upgradeBurstPerAddress}, then ${limits.upgradesPerSecondPerAddress}/s)`,
    );
    console.log(
      `upgrade refusals: 429 ${count(tally.refusals, 429)}, 503 ${count(tally.refusals, 503)} (by status: ${byKey(tally.refusals)}); connection errors ${tally.connectErrors}`,
    );
    console.log(`closes by code: ${byKey(tally.closes)}`);
    console.log(
      `hosts with ras_agent_up 0 on the new collector: at most ${maxDown}, the last seen ${lastDownAt ? seconds(lastDownAt - t0) : '-'} after SIGTERM; users unverified at most ${maxUnverified}`,
    );
    const downFor = lastDownAt ? lastDownAt - t0 : 0;
    console.log(
      `  host down for a planned restart: ${maxDown > 0 || maxUnverified > 0 ? 'seen (the drain releases each lease: docs/design.md §2 rule 10)' : 'never seen'}; RasAgentDown (for: ${AGENT_DOWN_FOR_SECONDS / 60}m) ${downFor < AGENT_DOWN_FOR_SECONDS * 1000 ? 'would not fire' : 'would fire'}`,
    );
  } finally {
    for (const agent of fleet) agent.close();
    client.disconnect();
    await collector.stop();
  }
}

/**
 * The restart with the default limits, then with the limit raised as an operator behind a balancer
 * that presents one address would raise it (`http.trustedProxies` is the real fix where the
 * balancer adds X-Forwarded-For).
 */
export async function runRestart(redis: RedisServer, options: RestartOptions): Promise<void> {
  await restartOnce(redis, options, 'default limits', DEFAULT_UPGRADE_LIMITS);
  const { upgradeBurstPerAddress: burst, upgradesPerSecondPerAddress: rate } = DEFAULT_UPGRADE_LIMITS;
  console.log(
    `note: from one address with the default limits at most ${burst + rate * TARGET_SECONDS} agents (burst ${burst} + ${rate}/s × ${TARGET_SECONDS} s) can be back within ${TARGET_SECONDS} s, however they retry: the ${TARGET_SECONDS} s target for ${options.agents} agents behind one address needs http.trustedProxies (the balancer's X-Forwarded-For; the real fix) or the limits raised, as here:`,
  );
  await restartOnce(redis, options, 'limits raised for one balancer address', {
    upgradesPerSecondPerAddress: Math.max(50, Math.ceil(options.agents / 10)),
    upgradeBurstPerAddress: Math.max(500, options.agents),
  });
}
