/**
 * `npm run bench:agent`: what the agent costs a host, beside a bare `node -e` measured in the same
 * run. Everything on loopback against a real collector (in this process) and Redis started here.
 *
 * - rasmon-agent.exe's size (dist/, built first when missing or stale);
 * - RSS and CPU of the agent holding 200 sessions: the exe's own bundled script run by this Linux
 *   Node, with the flags the exe runs with (AGENT_EXEC_ARGV), with the `simulate` source (wine's
 *   memory and CPU figures would be wine's, not Windows'); and the same agent idle: 200 sessions
 *   that do not change, read every 60 s as the `wts` source polls (its session events cost no CPU
 *   while none come), through `command`;
 * - one `wts` poll's cost, from the exe's own rasmon_agent_poll_duration_seconds under wine (wine
 *   lists no user sessions: this is the enumerations' floor, not a 200-session host);
 * - processes started per poll, counted with `strace -f -e execve` attached to the running agent:
 *   the exe with `wts`, and with `command` for contrast;
 * - logon-to-/metrics latency, woken by a session event versus found by the poll: the agent in this
 *   process, its source's watch() fired by the bench as WTSWaitSystemEvent would fire it on a real
 *   logon (wine sends none), timed until the collector's /metrics shows the session.
 *
 * - bytes the agent writes to disk per poll at SESSIONS sessions (`simulate`, polls every second so
 *   a short run holds many polls), from /proc/PID/io: `wchar` (bytes handed to write()) and
 *   `write_bytes` (bytes the kernel sent to storage: whole pages, so an fsynced small append
 *   counts a page), scaled to a day of 5 s polls.
 *
 *   npm run bench:agent -- [--sessions 200] [--seconds 15] [--only writes]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Session } from '@rasmon/protocol';
import { Agent, AGENT_EXEC_ARGV, type SessionSource } from '@rasmon/agent';
import { currentExeStamp, REPO_ROOT } from '../agent/build/exe-inputs.js';
import { InProcessCollector, rawConfig } from '../test/support/collector-harness.js';
import { Scrape } from '../test/support/prometheus-text.js';
import { RedisServer } from '../test/support/redis-server.js';
import { freePort } from '../test/support/free-port.js';
import { ensureAgentExe, WINE_MISSING, WinePrefix, type WineProcess } from '../test/support/wine.js';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '15' },
    /** `writes`: only the agent's disk writes (no exe build, no wine). */
    only: { type: 'string' },
  },
});
const SESSIONS = Number(values.sessions);
const SECONDS = Number(values.seconds);
const FARM = 'bench';
const TOKEN = 'bench-token';
const BUNDLE = join(REPO_ROOT, 'dist', 'exe-build', 'rasmon-agent.cjs');
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const windowsPath = (path: string) => `Z:${path.replaceAll('/', '\\')}`;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) * 1024;
}

/** utime + stime of the process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** RSS at the end and CPU use over `seconds`, after `warmupMs`. */
async function sample(pid: number, seconds: number, warmupMs = 3000): Promise<{ rss: number; cpuPercent: number }> {
  await sleep(warmupMs);
  const cpu0 = cpuSeconds(pid);
  const t0 = process.hrtime.bigint();
  await sleep(seconds * 1000);
  const cpu1 = cpuSeconds(pid);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rss: rssBytes(pid), cpuPercent: ((cpu1 - cpu0) / elapsed) * 100 };
}

async function untilMetrics(url: string, child: { exitCode: number | null }, what: string): Promise<void> {
  for (let i = 0; i < 600; i += 1) {
    if (child.exitCode !== null) throw new Error(`${what} exited ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/metrics`)).status === 200) return;
    } catch {
      // not yet
    }
    await sleep(50);
  }
  throw new Error(`${what} never served /metrics`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

interface Rig {
  redis: RedisServer;
  collector: InProcessCollector;
  collectorPort: number;
  dir: string;
  tokenFile: string;
}

function agentConfig(
  rig: Rig,
  extra: Record<string, unknown>,
  metricsPort: number,
  paths: (p: string) => string = (p) => p,
) {
  const path = join(mkdtempSync(join(rig.dir, 'agent-')), 'agent.json');
  writeFileSync(
    path,
    JSON.stringify({
      collector: `ws://127.0.0.1:${rig.collectorPort}`,
      tokenFile: paths(rig.tokenFile),
      farm: FARM,
      spool: { dir: paths(join(path, '..', 'spool')) },
      metrics: { listen: `127.0.0.1:${metricsPort}` },
      ...extra,
    }),
  );
  return path;
}

/** The bundled agent (the exe's script) under this Node, `simulate` at SESSIONS sessions. */
async function nodeAgentCost(rig: Rig): Promise<{ rss: number; cpuPercent: number; sessions: number }> {
  const port = await freePort();
  const config = agentConfig(
    rig,
    {
      host: 'bench-linux',
      source: 'simulate',
      simulate: { users: SESSIONS * 2, admins: 3, targetSessions: SESSIONS, seed: 7 },
    },
    port,
  );
  return bundleCost(config, port);
}

/**
 * The bundle under this Node with the exe's flags, measured from `warmupMs` after its /metrics
 * answers (the first poll, the welcome and the first snapshot are start-up, not steady state).
 */
async function bundleCost(
  config: string,
  port: number,
  warmupMs = 3000,
): Promise<{ rss: number; cpuPercent: number; sessions: number }> {
  const child = spawn(process.execPath, [...AGENT_EXEC_ARGV, BUNDLE, '--config', config], {
    stdio: 'ignore',
    env: { ...process.env, RASMON_LOG_LEVEL: 'warn' },
  });
  try {
    await untilMetrics(`http://127.0.0.1:${port}`, child, 'agent');
    const result = await sample(child.pid!, SECONDS, warmupMs);
    const sessions = (await Scrape.from(`http://127.0.0.1:${port}`)).value('rasmon_agent_sessions') ?? 0;
    return { ...result, sessions };
  } finally {
    await stopChild(child);
  }
}

/** The same agent idle: SESSIONS sessions that do not change, read every 60 s (the `wts` poll). */
async function idleAgentCost(rig: Rig): Promise<{ rss: number; cpuPercent: number; sessions: number }> {
  const port = await freePort();
  const list = join(rig.dir, 'idle-sessions.json');
  const since = Date.now() - 3_600_000;
  writeFileSync(
    list,
    JSON.stringify(
      Array.from({ length: SESSIONS }, (_, i) => ({
        id: `${i + 2}-${since}`,
        user: `CORP\\idle${i}`,
        admin: false,
        kind: 'desktop',
        via: 'ras',
        state: 'active',
        since,
      })),
    ),
  );
  const config = agentConfig(
    rig,
    { host: 'bench-idle', source: 'command', command: `cat ${list}`, pollIntervalSeconds: 60 },
    port,
  );
  return bundleCost(config, port, 10_000);
}

/** Counters of /proc/PID/io (wchar, write_bytes, syscw). */
function ioCounters(pid: number): Record<string, number> {
  const counters: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/io`, 'utf8').split('\n')) {
    const [key, value] = line.split(':');
    if (key && value) counters[key.trim()] = Number(value.trim());
  }
  return counters;
}

interface WriteFigures {
  polls: number;
  sessions: number;
  wcharPerPoll: number;
  writeBytesPerPoll: number;
}

/** The agent's disk writes per poll at SESSIONS sessions: the agent CLI under this Node, `simulate`. */
async function writeCost(rig: Rig): Promise<WriteFigures> {
  const port = await freePort();
  const config = agentConfig(
    rig,
    {
      host: 'bench-writes',
      source: 'simulate',
      pollIntervalSeconds: 1,
      simulate: { users: SESSIONS * 2, admins: 3, targetSessions: SESSIONS, seed: 11 },
    },
    port,
  );
  const cli = join(REPO_ROOT, 'agent', 'bin', 'rasmon-agent.js');
  const child = spawn(process.execPath, [cli, '--config', config], {
    stdio: 'ignore',
    env: { ...process.env, RASMON_LOG_LEVEL: 'warn' },
  });
  const polls = async () =>
    (await Scrape.from(`http://127.0.0.1:${port}`)).value('rasmon_agent_poll_duration_seconds_count') ?? 0;
  try {
    await untilMetrics(`http://127.0.0.1:${port}`, child, 'agent');
    await sleep(3000);
    const polls0 = await polls();
    const io0 = ioCounters(child.pid!);
    await sleep(SECONDS * 1000);
    const io1 = ioCounters(child.pid!);
    const count = (await polls()) - polls0;
    const sessions = (await Scrape.from(`http://127.0.0.1:${port}`)).value('rasmon_agent_sessions') ?? 0;
    const per = (key: string) => (io1[key]! - io0[key]!) / Math.max(1, count);
    return { polls: count, sessions, wcharPerPoll: per('wchar'), writeBytesPerPoll: per('write_bytes') };
  } finally {
    await stopChild(child);
  }
}

function writeLine(writes: WriteFigures): string {
  const day = (perPoll: number) => `${((perPoll * 86_400) / 5 / 1e6).toFixed(1)} MB/day`;
  return (
    `agent disk writes, simulate, ${writes.sessions} sessions, ${writes.polls} polls: ` +
    `wchar ${(writes.wcharPerPoll / 1024).toFixed(2)} KiB/poll (${day(writes.wcharPerPoll)} at 5 s polls), ` +
    `write_bytes ${(writes.writeBytesPerPoll / 1024).toFixed(2)} KiB/poll (${day(writes.writeBytesPerPoll)})`
  );
}

async function baselineCost(): Promise<{ rss: number; cpuPercent: number }> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    return await sample(child.pid!, SECONDS, 1000);
  } finally {
    await stopChild(child);
  }
}

/** execve calls of the process and its descendants while attached, and the polls meanwhile. */
async function processesPerPoll(
  pid: number,
  metricsUrl: string,
  seconds: number,
): Promise<{ processes: number; polls: number } | string> {
  if (spawnSync('sh', ['-c', 'command -v strace']).status !== 0) return 'strace not installed';
  const out = join(mkdtempSync(join(tmpdir(), 'rasmon-strace-')), 'trace.txt');
  const polls0 = (await Scrape.from(metricsUrl)).value('rasmon_agent_poll_duration_seconds_count') ?? 0;
  const strace = spawn('strace', ['-f', '-qq', '-e', 'trace=execve', '-o', out, '-p', String(pid)], {
    stdio: 'ignore',
  });
  await sleep(seconds * 1000);
  const exited = new Promise((resolve) => strace.once('exit', resolve));
  strace.kill('SIGINT');
  await exited;
  const polls1 = (await Scrape.from(metricsUrl)).value('rasmon_agent_poll_duration_seconds_count') ?? 0;
  let text = '';
  try {
    text = readFileSync(out, 'utf8');
  } catch {
    // nothing traced
  }
  rmSync(join(out, '..'), { recursive: true, force: true });
  const processes = text.split('\n').filter((line) => /execve\(/.test(line) && !/= -1 /.test(line)).length;
  return { processes, polls: polls1 - polls0 };
}

interface ExeFigures {
  wtsPollMs?: number | undefined;
  wtsPolls?: number;
  wtsProcesses?: { processes: number; polls: number } | string;
  commandProcesses?: { processes: number; polls: number } | string;
  commandPollMs?: number | undefined;
}

async function exeFigures(rig: Rig): Promise<ExeFigures | string> {
  if (WINE_MISSING) return WINE_MISSING;
  const wine = await WinePrefix.create();
  const figures: ExeFigures = {};
  try {
    for (const source of ['wts', 'command'] as const) {
      const port = await freePort();
      const metricsUrl = `http://127.0.0.1:${port}`;
      const sessionsFile = join(rig.dir, 'sessions.json');
      writeFileSync(sessionsFile, '[]');
      const config = agentConfig(
        rig,
        {
          host: `bench-exe-${source}`,
          source,
          pollIntervalSeconds: 0.5,
          ...(source === 'command' ? { command: `type "${windowsPath(sessionsFile)}"` } : {}),
        },
        port,
        windowsPath,
      );
      const agent: WineProcess = await wine.startExe(['--config', windowsPath(config)], { RASMON_LOG_LEVEL: 'warn' });
      try {
        await untilMetrics(metricsUrl, agent.child, `rasmon-agent.exe (${source})`);
        await sleep(2000);
        const before = await Scrape.from(metricsUrl);
        await sleep(SECONDS * 1000);
        const after = await Scrape.from(metricsUrl);
        const polls =
          (after.value('rasmon_agent_poll_duration_seconds_count') ?? 0) -
          (before.value('rasmon_agent_poll_duration_seconds_count') ?? 0);
        const seconds =
          (after.value('rasmon_agent_poll_duration_seconds_sum') ?? 0) -
          (before.value('rasmon_agent_poll_duration_seconds_sum') ?? 0);
        const traced = await processesPerPoll(agent.child.pid!, metricsUrl, Math.min(SECONDS, 10));
        if (source === 'wts') {
          figures.wtsPolls = polls;
          figures.wtsPollMs = polls > 0 ? (seconds / polls) * 1000 : undefined;
          figures.wtsProcesses = traced;
        } else {
          figures.commandPollMs = polls > 0 ? (seconds / polls) * 1000 : undefined;
          figures.commandProcesses = traced;
        }
      } finally {
        await agent.kill();
      }
    }
  } finally {
    await wine.dispose();
  }
  return figures;
}

/** A host whose logons the bench makes; with `events`, each also fires the watch. */
class BenchHost implements SessionSource {
  readonly name = 'bench';
  sessions: Session[] = [];
  private onChange: (() => void) | undefined;

  constructor(private readonly events: boolean) {}

  async list(): Promise<Session[]> {
    return this.sessions;
  }

  watch(onChange: () => void): () => void {
    if (this.events) this.onChange = onChange;
    return () => (this.onChange = undefined);
  }

  logon(n: number): void {
    this.sessions = [
      ...this.sessions,
      {
        id: `${n}-${Date.now()}`,
        user: `CORP\\u${n}`,
        admin: false,
        kind: 'desktop',
        via: 'ras',
        state: 'active',
        since: Date.now(),
      },
    ];
    this.onChange?.();
  }
}

/** ms from a logon to the collector's /metrics counting it, `samples` times. */
async function logonLatency(rig: Rig, events: boolean, pollSeconds: number, samples: number): Promise<number[]> {
  const host = new BenchHost(events);
  const name = `bench-${events ? 'events' : 'poll'}-${pollSeconds}`;
  const agent = new Agent({
    source: host,
    spool: { dir: mkdtempSync(join(rig.dir, 'spool-')), maxBytes: 1 << 20 },
    pollIntervalSeconds: pollSeconds,
    snapshotIntervalSeconds: 3600,
    log: pino({ level: 'silent' }),
    link: {
      url: `ws://127.0.0.1:${rig.collectorPort}`,
      token: TOKEN,
      farm: FARM,
      host: name,
      agent: 'rasmon-agent/bench',
      backoff: { initialMs: 100, maxMs: 500 },
      supersededDelayMs: 1000,
    },
  });
  await agent.start();
  const latencies: number[] = [];
  try {
    while (!agent.connection.ready) await sleep(20);
    for (let i = 1; i <= samples; i += 1) {
      // Logons land at a random moment of the poll cycle (with events the cycle does not matter:
      // a few seconds of spread are enough).
      await sleep(Math.random() * Math.min(pollSeconds, 5) * 1000);
      const t0 = performance.now();
      host.logon(i);
      for (;;) {
        const count = (await Scrape.from(rig.collector.url)).value('ras_host_connections', { farm: FARM, host: name });
        if (count === i) break;
        await sleep(10);
      }
      latencies.push(performance.now() - t0);
    }
  } finally {
    await agent.stop();
  }
  return latencies;
}

const step = (what: string) => process.stderr.write(`bench:agent: ${what}\n`);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

async function main(): Promise<void> {
  if (values.only === 'writes') return onlyWrites();
  step('building rasmon-agent.exe if stale');
  await ensureAgentExe();
  const stamp = currentExeStamp()!;
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-bench-agent-'));
  const redis = await RedisServer.start();
  const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: FARM, seats: 10_000, token: TOKEN }]));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const rig: Rig = { redis, collector, collectorPort: collector.collector.address.port, dir, tokenFile };
  try {
    step('bare node baseline');
    const baseline = await baselineCost();
    step(`agent at ${SESSIONS} sessions`);
    const agent = await nodeAgentCost(rig);
    step(`agent idle at ${SESSIONS} sessions`);
    const idle = await idleAgentCost(rig);
    step('rasmon-agent.exe under wine');
    const exe = await exeFigures(rig);
    step('logon latency with session events');
    const withEvents = await logonLatency(rig, true, 60, 10);
    step('logon latency by polling');
    const byPolling = await logonLatency(rig, false, 5, 4);
    step(`agent disk writes at ${SESSIONS} sessions`);
    const writes = await writeCost(rig);

    const lines = [
      `rasmon-agent.exe: ${mib(stamp.bytes)} (${stamp.bytes} bytes), Node ${stamp.node}, koffi ${stamp.koffi}`,
      `bare node -e (this Node ${process.version}):     RSS ${mib(baseline.rss)}, CPU ${baseline.cpuPercent.toFixed(2)} % over ${SECONDS} s`,
      `agent (node ${AGENT_EXEC_ARGV.join(' ')}), simulate, ${agent.sessions} sessions: RSS ${mib(agent.rss)} (+${mib(agent.rss - baseline.rss)}), CPU ${agent.cpuPercent.toFixed(2)} % (poll 5 s, churning)`,
      `agent idle, ${idle.sessions} sessions read every 60 s as wts polls: RSS ${mib(idle.rss)} (+${mib(idle.rss - baseline.rss)}), CPU ${idle.cpuPercent.toFixed(2)} % (bare node ${baseline.cpuPercent.toFixed(2)} %)`,
    ];
    if (typeof exe === 'string') lines.push(`exe under wine: skipped (${exe})`);
    else {
      const perPoll = (t: ExeFigures['wtsProcesses']) =>
        typeof t === 'string' || t === undefined
          ? `not counted (${t ?? 'no data'})`
          : `${(t.processes / Math.max(1, t.polls)).toFixed(2)} (${t.processes} over ${t.polls} polls)`;
      lines.push(
        `exe under wine, wts poll: ${exe.wtsPollMs?.toFixed(2) ?? '?'} ms mean over ${exe.wtsPolls} polls (wine: no user sessions)`,
        `processes started per poll: wts ${perPoll(exe.wtsProcesses)}; command (cmd.exe) ${perPoll(exe.commandProcesses)}, ${exe.commandPollMs?.toFixed(1) ?? '?'} ms a poll`,
      );
    }
    lines.push(
      `logon to /metrics, session event (watch fired as WTSWaitSystemEvent would): median ${median(withEvents).toFixed(0)} ms, max ${Math.max(...withEvents).toFixed(0)} ms (${withEvents.length} logons)`,
      `logon to /metrics, found by a 5 s poll: median ${median(byPolling).toFixed(0)} ms, max ${Math.max(...byPolling).toFixed(0)} ms (${byPolling.length} logons); a 60 s poll alone averages 30 s`,
    );
    lines.push(writeLine(writes));
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await collector.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function onlyWrites(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-bench-agent-'));
  const redis = await RedisServer.start();
  const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: FARM, seats: 10_000, token: TOKEN }]));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  try {
    step(`agent disk writes at ${SESSIONS} sessions`);
    const writes = await writeCost({
      redis,
      collector,
      collectorPort: collector.collector.address.port,
      dir,
      tokenFile,
    });
    process.stdout.write(`${writeLine(writes)}\n`);
  } finally {
    await collector.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:agent: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);
