/**
 * rasmon-agent.exe as its own Windows service, under wine64 (one prefix for the file): installed
 * with its own `service install`, seen running by wine's sc.exe, delivering the sessions of a
 * `command` source to a real collector on Linux, stopped with its spool flushed, and removed.
 * Also `check` against that collector with a good and a bad token.
 *
 * What wine cannot show: wine accepts SetNamedSecurityInfoW on files but keeps no ACL (the DACL read
 * back is always derived from the Unix mode), so here the token file always stays readable and
 * install must refuse it, or warn with --allow-readable-token; the by-SID decisions are unit tested
 * (agent/test/windows-dacl.test.ts). Wine's ReportEventW writes nowhere a test can read: the
 * events are witnessed through the service log's `eventId` lines and the source's registry key.
 */
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Session } from '@rasmon/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { readSpool } from './support/agent-process.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { Scrape } from './support/prometheus-text.js';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';
import { DISPOSE_TIMEOUT_MS, ensureAgentExe, WINE_MISSING, WinePrefix } from './support/wine.js';

const FARM = 'farm-w';
const HOST = 'rdsh-w1';
const TOKEN = 'token-farm-w';

const redis = useRedis();
let collector: InProcessCollector | undefined;
/** The collector's fixed port, so a restarted collector is found at the same address. */
let port: number;
let prefix: WinePrefix;
/** C:\rasmon inside the prefix, as Linux sees it. */
let dir: string;

function startCollector(): Promise<InProcessCollector> {
  return InProcessCollector.start(
    rawConfig(redis.url, [{ id: FARM, seats: 10, token: TOKEN }], { listen: `127.0.0.1:${port}` }),
  );
}

/** One logon time for all: a session written again is the same session, not a change. */
const SINCE = Date.now() - 60_000;

function session(id: string, user: string, kind: 'desktop' | 'app'): Session {
  return { id, user, admin: false, kind, via: 'ras', state: 'active', since: SINCE };
}

function writeSessions(sessions: Session[]): void {
  writeFileSync(join(dir, 'sessions.json'), JSON.stringify(sessions));
}

function writeConfig(name: string, extra: Record<string, unknown>): string {
  const config = {
    collector: `ws://127.0.0.1:${port}`,
    tokenFile: 'C:\\rasmon\\token',
    farm: FARM,
    host: HOST,
    source: 'command',
    command: 'type C:\\rasmon\\sessions.json',
    pollIntervalSeconds: 1,
    spool: { dir: 'C:\\rasmon\\spool' },
    ...extra,
  };
  writeFileSync(join(dir, name), JSON.stringify(config));
  return `C:\\rasmon\\${name}`;
}

async function connections(kind: string): Promise<number | undefined> {
  const scrape = await Scrape.from(`http://127.0.0.1:${port}`);
  return scrape.value('ras_connections', { farm: FARM, kind, via: 'ras', admin: 'false', session_state: 'active' });
}

/** Runs the exe and expects exit 0; its output is in the failure message otherwise. */
async function exeOk(args: string[]): Promise<string> {
  const run = await prefix.exe(args);
  expect(run, `rasmon-agent.exe ${args.join(' ')}`).toMatchObject({ code: 0, stderr: '' });
  return run.stdout;
}

function sc(...args: string[]) {
  return prefix.run('wine', ['sc', ...args], 60_000);
}

/** The spooled events not yet acked (acked lines stay in events.log while the agent runs). */
function spooled(): string[] {
  return readSpool(join(dir, 'spool')).pending.map((event) => JSON.stringify(event));
}

/** The temp folders of the prefix, as Linux sees them: C:\windows\temp and each user's. */
function tempFolders(): string[] {
  const drive = join(prefix.dir, 'drive_c');
  const users = readdirSync(join(drive, 'users')).map((user) => join(drive, 'users', user, 'AppData', 'Local', 'Temp'));
  return [join(drive, 'windows', 'temp'), ...users].filter((path) => existsSync(path));
}

/** The service's log file (JSON by default: ISO times, level names), `at` its time in ms. */
function serviceLog(): Array<Record<string, unknown> & { at: number }> {
  const file = join(dir, 'logs', 'rasmon-agent.log');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .map((line) => ({ ...line, at: Date.parse(line.time as string) }));
}

describe.skipIf(WINE_MISSING !== undefined)('rasmon-agent.exe as a Windows service (wine64)', () => {
  beforeAll(async () => {
    const [, wine] = await Promise.all([ensureAgentExe(), WinePrefix.create()]);
    prefix = wine;
    await prefix.runServices();
    port = await freePort();
    collector = await startCollector();
    dir = join(prefix.dir, 'drive_c', 'rasmon');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    writeFileSync(join(dir, 'bad-token'), 'not-the-token\n');
    writeSessions([session('1-a', 'CORP\\alice', 'desktop')]);
  }, 600_000);

  afterEach(async () => {
    // A failed test must not leave the service to the next one (uninstall is a no-op when absent).
    await prefix?.exe(['service', 'uninstall']);
  });

  afterAll(async () => {
    await prefix?.dispose();
    await collector?.stop();
  }, DISPOSE_TIMEOUT_MS);

  it('check: the collector accepts the good token and refuses the bad one, one line each', async () => {
    const good = await prefix.exe(['check', '--config', writeConfig('check.json', {})]);
    const lines = good.stdout.trim().split(/\r?\n/);
    expect(lines).toHaveLength(3);
    // Wine keeps no ACLs: the token stays readable by Everyone, which check must say.
    expect(lines[0]).toMatch(/^FAIL token file C:\\rasmon\\token reads, but .*Everyone \(S-1-1-0\)/);
    expect(lines[1]).toBe('ok   source command lists 1 session');
    expect(lines[2]).toMatch(
      /^ok {3}collector ws:\/\/127\.0\.0\.1:\d+ accepted the token for farm farm-w, host rdsh-w1 \(welcome, ack \d+\)$/,
    );
    expect(good.code).toBe(1);

    const bad = await prefix.exe([
      'check',
      '--config',
      writeConfig('check-bad.json', { tokenFile: 'C:\\rasmon\\bad-token' }),
    ]);
    expect(bad.stdout).toMatch(/^FAIL collector ws:\/\/127\.0\.0\.1:\d+: refused the token \(HTTP 401\)$/m);
    expect(bad.code).toBe(1);
  });

  it('install refuses a token file it cannot lock, and creates nothing', async () => {
    const run = await prefix.exe(['service', 'install', '--config', writeConfig('agent.json', {})]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/token file C:\\rasmon\\token is still readable by .*Everyone.*: not installed/);
    expect((await sc('query', 'rasmon-agent')).code).not.toBe(0);
  });

  // Wine maps a file's Unix owner to a SID: this account's own, or Anonymous (S-1-5-7) for any other
  // uid. So a file or folder chowned to another uid is one "someone else created first".
  it.skipIf(process.getuid?.() !== 0)(
    'install refuses a token file or spool folder someone else owns, names it and the owner, and creates nothing',
    async () => {
      const foreignToken = join(dir, 'foreign-token');
      writeFileSync(foreignToken, `${TOKEN}\n`);
      chownSync(foreignToken, 65534, 65534);
      const byToken = await prefix.exe([
        'service',
        'install',
        '--allow-readable-token',
        '--config',
        writeConfig('foreign-token.json', { tokenFile: 'C:\\rasmon\\foreign-token' }),
      ]);
      expect(byToken.code).toBe(2);
      expect(byToken.stderr).toContain(
        'C:\\rasmon\\foreign-token is owned by Anonymous (S-1-5-7), not by SYSTEM or Administrators',
      );
      expect(byToken.stderr).toMatch(/Delete it as an administrator .*then run this again: not installed/);

      const foreignSpool = join(dir, 'foreign', 'spool');
      mkdirSync(foreignSpool, { recursive: true });
      chownSync(foreignSpool, 65534, 65534);
      const bySpool = await prefix.exe([
        'service',
        'install',
        '--allow-readable-token',
        '--config',
        writeConfig('foreign-spool.json', { spool: { dir: 'C:\\rasmon\\foreign\\spool' } }),
      ]);
      expect(bySpool.code).toBe(2);
      expect(bySpool.stderr).toContain(
        'C:\\rasmon\\foreign\\spool is owned by Anonymous (S-1-5-7), not by SYSTEM or Administrators',
      );
      expect((await sc('query', 'rasmon-agent')).code).not.toBe(0);
      // Nothing was written into the refused folder, nor the owner changed.
      expect(readdirSync(foreignSpool)).toEqual([]);
      expect(statSync(foreignSpool).uid).toBe(65534);
    },
    120_000,
  );

  it('installs, runs, delivers and streams sessions, stops with its spool flushed, and uninstalls', async () => {
    const config = writeConfig('agent.json', {});
    // koffi's module goes to C:\rasmon\runtime (beside the spool); plant what an earlier run could
    // leave there, and what no run names so: only the former may go.
    const runtime = join(dir, 'runtime');
    mkdirSync(join(runtime, 'koffi-2-0123456789abcdef.node'), { recursive: true });
    writeFileSync(join(runtime, 'koffi-2-0123456789abcdef.node', 'inside'), 'kept');
    writeFileSync(join(runtime, 'koffi-1-0123456789abcdef.node'), 'an earlier copy');
    writeFileSync(join(runtime, 'keep.txt'), 'kept');
    const planted = tempFolders();
    expect(planted.length).toBeGreaterThan(0);
    for (const temp of planted) {
      mkdirSync(join(temp, 'rasmon-agent-koffi-planted'), { recursive: true });
      writeFileSync(join(temp, 'rasmon-agent-koffi-planted', 'victim'), 'kept');
      writeFileSync(join(temp, 'koffi-1-0123456789abcdef.node'), 'not the agent’s');
    }
    const install = await prefix.exe(['service', 'install', '--config', config, '--allow-readable-token']);
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    expect(install.stdout).toMatch(/^WARNING token file C:\\rasmon\\token .*installing anyway/m);
    expect(install.stdout).toMatch(/^event source rasmon-agent registered in the Application log$/m);
    expect(install.stdout).toMatch(
      /^service rasmon-agent installed and running \(pid \d+\): "Z:\\.*\\rasmon-agent\.exe" service run --config C:\\rasmon\\agent\.json$/m,
    );

    // wine's own sc.exe is the independent witness.
    const query = await sc('query', 'rasmon-agent');
    expect(query, 'sc query rasmon-agent').toMatchObject({ code: 0 });
    expect(query.stdout).toMatch(/STATE\s+:\s+4\s+RUNNING/);
    // Wine's sc.exe has no `qc`: the service's registry key, which its SCM writes, says the same.
    const key = await prefix.run(
      'wine',
      ['reg', 'query', 'HKLM\\SYSTEM\\CurrentControlSet\\Services\\rasmon-agent'],
      60_000,
    );
    expect(key.stdout).toMatch(/Start\s+REG_DWORD\s+0x2/);
    expect(key.stdout).toMatch(/ObjectName\s+REG_SZ\s+LocalSystem/);
    expect(key.stdout).toMatch(/Description\s+REG_SZ\s+Streams this RD Session Host/);
    const source = await prefix.run(
      'wine',
      ['reg', 'query', 'HKLM\\SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\rasmon-agent'],
      60_000,
    );
    expect(source.code).toBe(0);
    expect(source.stdout).toContain('EventMessageFile');

    const status = await prefix.exe(['service', 'status']);
    expect(status, 'service status').toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^rasmon-agent: running \(pid \d+\)\r?\n$/),
    });

    await expect.poll(() => connections('desktop'), { timeout: 30_000 }).toBe(1);
    // A change streams while the service runs.
    writeSessions([session('1-a', 'CORP\\alice', 'desktop'), session('2-b', 'CORP\\bob', 'app')]);
    await expect.poll(() => connections('app'), { timeout: 30_000 }).toBe(1);
    expect(serviceLog().some((line) => line.eventId === 1000)).toBe(true);

    // The earlier copy is gone, one file; the rest stays; the running service's own copy is there.
    const left = readdirSync(runtime).sort();
    expect(left).not.toContain('koffi-1-0123456789abcdef.node');
    expect(left).toEqual(expect.arrayContaining(['keep.txt', 'koffi-2-0123456789abcdef.node']));
    expect(readFileSync(join(runtime, 'koffi-2-0123456789abcdef.node', 'inside'), 'utf8')).toBe('kept');
    expect(left.filter((name) => /^koffi-\d+-[0-9a-f]{16}\.node$/.test(name)).length).toBeGreaterThan(0);
    // Nothing removed from the temp folders, where users can create folders: what an older agent
    // removed recursively there (any `rasmon-agent-koffi-*`, a junction as good as a folder) stays.
    for (const temp of planted) {
      expect(readFileSync(join(temp, 'rasmon-agent-koffi-planted', 'victim'), 'utf8')).toBe('kept');
      expect(existsSync(join(temp, 'koffi-1-0123456789abcdef.node'))).toBe(true);
    }

    const uninstall = await prefix.exe(['service', 'uninstall']);
    expect(uninstall.stderr).toBe('');
    expect(uninstall.stdout.trim()).toBe(
      'service rasmon-agent stopped and removed; its configuration, token and spool are left in place',
    );
    expect(uninstall.code).toBe(0);

    // Stopped through the SCM: the agent's own stop ran (connection closed with 1000), then STOPPED.
    const messages = serviceLog().map((line) => line.msg);
    expect(messages).toContain('service stopping');
    expect(serviceLog().some((line) => line.msg === 'collector connection closed' && line.code === 1000)).toBe(true);
    expect(serviceLog().some((line) => line.eventId === 1001)).toBe(true);
    expect(messages.at(-1)).toBe('service stopped');
    // Everything was acked before the stop: the spool holds nothing, and its state says how far.
    expect(readFileSync(join(dir, 'spool', 'events.log'), 'utf8')).toBe('');
    const state = JSON.parse(readFileSync(join(dir, 'spool', 'state.json'), 'utf8')) as { acked: number };
    expect(state.acked).toBeGreaterThanOrEqual(2);

    expect((await sc('query', 'rasmon-agent')).code).not.toBe(0);
    expect(
      (
        await prefix.run(
          'wine',
          ['reg', 'query', 'HKLM\\SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\rasmon-agent'],
          60_000,
        )
      ).code,
    ).not.toBe(0);
    const gone = await prefix.exe(['service', 'status']);
    expect(gone.stdout.trim()).toBe('rasmon-agent: not installed');
    expect(gone.code).toBe(4);
  });

  it('a service stop with the collector down keeps the spooled events; the next install sends them', async () => {
    const config = writeConfig('agent.json', { reconnect: { initialSeconds: 0.2, maxSeconds: 0.5 } });
    await exeOk(['service', 'install', '--config', config, '--allow-readable-token']);
    await expect.poll(() => connections('app'), { timeout: 30_000 }).toBe(1);
    await collector!.stop();
    collector = undefined;
    // A logoff and a logon while the collector is away: they wait in the spool.
    writeSessions([session('2-b', 'CORP\\bob', 'app'), session('3-c', 'CORP\\carol', 'app')]);
    await expect.poll(() => spooled(), { timeout: 30_000 }).toHaveLength(2);

    const stoppedAt = Date.now();
    await exeOk(['service', 'uninstall']);
    const stopLines = serviceLog().filter((line) => line.at >= stoppedAt);
    expect(stopLines.map((line) => line.msg)).toEqual(expect.arrayContaining(['service stopping', 'service stopped']));
    expect(stopLines.some((line) => line.eventId === 1001)).toBe(true);
    // Nothing lost over the stop: both events are still on disk, in order.
    expect(spooled().map((line) => (JSON.parse(line) as { op: string }).op)).toEqual(['end', 'upsert']);

    collector = await startCollector();
    await exeOk(['service', 'install', '--config', config, '--allow-readable-token']);
    await vi.waitFor(
      async () => {
        expect(await connections('app')).toBe(2);
        expect((await connections('desktop')) ?? 0).toBe(0);
      },
      { timeout: 30_000 },
    );
    await expect.poll(() => spooled(), { timeout: 30_000 }).toEqual([]);
    await exeOk(['service', 'uninstall']);
  });

  it('a refused token goes to the Event Log once, however often the agent retries', async () => {
    const config = writeConfig('refused.json', {
      tokenFile: 'C:\\rasmon\\bad-token',
      reconnect: { initialSeconds: 0.2, maxSeconds: 0.4 },
    });
    const startedAt = Date.now();
    await exeOk(['service', 'install', '--config', config, '--allow-readable-token']);
    const since = () => serviceLog().filter((line) => line.at >= startedAt);
    await expect
      .poll(() => since().filter((line) => line.msg === 'collector refused the token (401)').length, {
        timeout: 30_000,
      })
      .toBeGreaterThanOrEqual(4);
    expect(since().filter((line) => line.eventId === 2001)).toHaveLength(1);
    await exeOk(['service', 'uninstall']);
  });

  it("a host bound to another agent's key goes to the Event Log once (2004), however often the agent retries", async () => {
    // Earlier tests bound rdsh-w1 to this agent's own key; another agent's binding takes its place.
    const bindings = `${collector!.config.redis.prefix}:{${FARM}}:bindings`;
    const client = redis.client();
    const own = await client.hget(bindings, HOST);
    await client.hset(bindings, HOST, 'f'.repeat(64));
    const config = writeConfig('bound.json', { reconnect: { initialSeconds: 0.2, maxSeconds: 0.4 } });
    const startedAt = Date.now();
    await exeOk(['service', 'install', '--config', config, '--allow-readable-token']);
    const since = () => serviceLog().filter((line) => line.at >= startedAt);
    await expect
      .poll(
        () =>
          since().filter((line) => line.msg === 'collector closed the connection' && line.code === 'forbidden').length,
        { timeout: 30_000 },
      )
      .toBeGreaterThanOrEqual(3);
    expect(since().filter((line) => line.eventId === 2004)).toHaveLength(1);
    await exeOk(['service', 'uninstall']);
    if (own === null) await client.hdel(bindings, HOST);
    else await client.hset(bindings, HOST, own);
  });
});
