/**
 * rasmon-agent.msi under wine64 (`wine msiexec /qn`, one prefix for the file), against a real
 * collector: a refused install, an install from properties whose sessions reach the collector, an
 * upgrade to a newer build that keeps configuration, token, spool stream and host, an uninstall
 * that keeps ProgramData, an install from the admin's own CONFIGFILE while the collector is down,
 * and an uninstall with REMOVEDATA=1. The tests run in order: each starts from what the one before
 * left, as a host does.
 *
 * What wine cannot show: file ACLs (it keeps none: the setup step's lines say the folders are still
 * readable, which on NTFS they are not; the SDDL is unit tested in agent/test/windows-dacl.test.ts),
 * MsiHiddenProperties and the hidden-target bit (wine's msi logs every property; the package's
 * tables are checked instead, and the token file's content never reaches the log), recovery actions
 * (wine stores none; the step's line says they were set).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Session } from '@rasmon/protocol';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { versionNumbers } from '../agent/build/exe-identity.js';
import { REPO_ROOT } from '../agent/build/exe-inputs.js';
import { MSI_PUBLIC_PROPERTIES, UPGRADE_CODE, type MsiStamp } from '../agent/build/msi-layout.js';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { ensureAgentMsi, MSI_PATH, MSI_TOOLS_MISSING, Msiexec, windowsPath } from './support/msi.js';
import { Scrape } from './support/prometheus-text.js';
import { RedisServer } from './support/redis-server.js';
import { freePort } from './support/free-port.js';
import { DISPOSE_TIMEOUT_MS, WinePrefix } from './support/wine.js';

const FARM = 'farm-m';
const HOST = 'rdsh-m1';
const OWN_HOST = 'rdsh-m2';
const TOKEN = 'token-farm-m-5f1c';
const NEXT_MSI = join(REPO_ROOT, 'dist', 'rasmon-agent-next.msi');
/**
 * ERROR_INSTALL_FAILURE (1603) as wine's msiexec exits with it: a Linux exit status keeps the low
 * 8 bits only.
 */
const INSTALL_FAILURE = 1603 & 0xff;

let prefix: WinePrefix;
let msiexec: Msiexec;
let redis: RedisServer;
let collector: InProcessCollector;
let port: number;
let current: MsiStamp;
let next: MsiStamp;
/** C:\ProgramData\rasmon, C:\Program Files\rasmon and C:\share as Linux sees them. */
let data: string;
let programDir: string;
let share: string;

function msiTable(msi: string, table: string): string[][] {
  const out = spawnSync('msiinfo', ['export', msi, table], { encoding: 'utf8' });
  expect(out.status, `msiinfo export ${table}`).toBe(0);
  // Three header lines: column names, column types, table name and keys.
  return out.stdout
    .split(/\r?\n/)
    .slice(3)
    .filter((line) => line !== '')
    .map((line) => line.split('\t'));
}

function regQuery(key: string) {
  return prefix.run('wine', ['reg', 'query', key], 60_000);
}

const uninstallKey = (productCode: string) =>
  `HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\${productCode}`;
const EVENT_SOURCE_KEY = 'HKLM\\SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\rasmon-agent';

async function serviceState(): Promise<string | undefined> {
  const query = await prefix.run('wine', ['sc', 'query', 'rasmon-agent'], 60_000);
  if (query.code !== 0) return undefined;
  return /STATE\s+:\s+\d+\s+(\w+)/.exec(query.stdout)?.[1];
}

/** The installed exe's own `service status`. */
function installedStatus() {
  return prefix.run('wine', ['C:\\Program Files\\rasmon\\rasmon-agent.exe', 'service', 'status'], 60_000);
}

async function scrape(at = port): Promise<Scrape> {
  return Scrape.from(`http://127.0.0.1:${at}`);
}

async function agentHosts(at = port): Promise<string[]> {
  return (await scrape(at))
    .all('ras_agent_info', { farm: FARM })
    .map((sample) => sample.labels.host!)
    .sort();
}

async function farmConnections(at = port): Promise<number> {
  return (await scrape(at)).all('ras_connections', { farm: FARM }).reduce((sum, sample) => sum + sample.value, 0);
}

function spoolStream(): string {
  return (JSON.parse(readFileSync(join(data, 'spool', 'state.json'), 'utf8')) as { stream: string }).stream;
}

/** The next patch version: a build that upgrades this one. */
function nextVersion(version: string): string {
  const [major, minor, patch] = versionNumbers(version);
  return `${major}.${minor}.${patch + 1}`;
}

// A test's msiexec run may be started again when wine did not start it (test/support/msi.ts).
vi.setConfig({ testTimeout: 180_000 });

describe.skipIf(MSI_TOOLS_MISSING !== undefined)('rasmon-agent.msi under wine (msiexec /qn)', () => {
  beforeAll(async () => {
    const [wine] = await Promise.all([
      WinePrefix.create(),
      (async () => {
        current = await ensureAgentMsi();
        next = await ensureAgentMsi({ version: nextVersion(current.version), out: NEXT_MSI });
      })(),
    ]);
    prefix = wine;
    msiexec = await Msiexec.forServices(prefix);
    redis = await RedisServer.start();
    port = await freePort();
    collector = await InProcessCollector.start(
      rawConfig(redis.url, [{ id: FARM, seats: 1000, token: TOKEN }], { listen: `127.0.0.1:${port}` }),
    );
    data = join(prefix.dir, 'drive_c', 'ProgramData', 'rasmon');
    programDir = join(prefix.dir, 'drive_c', 'Program Files', 'rasmon');
    share = join(prefix.dir, 'drive_c', 'share');
    mkdirSync(share, { recursive: true });
    writeFileSync(join(share, 'token'), `${TOKEN}\r\n`);
  }, 900_000);

  afterAll(async () => {
    await prefix?.dispose();
    await collector?.stop();
    await redis?.stop();
  }, DISPOSE_TIMEOUT_MS);

  it('the package: a 64-bit per-machine service package, its upgrade code, its secrets kept out of the log', () => {
    expect(current.upgradeCode).toBe(UPGRADE_CODE);
    expect(next.productCode).not.toBe(current.productCode);
    const summary = spawnSync('msiinfo', ['suminfo', MSI_PATH], { encoding: 'utf8' }).stdout;
    expect(summary).toMatch(/^Template: x64;1033$/m);
    const properties = Object.fromEntries(msiTable(MSI_PATH, 'Property').map(([name, value]) => [name, value]));
    expect(properties).toMatchObject({
      UpgradeCode: UPGRADE_CODE,
      ProductCode: current.productCode,
      ProductVersion: current.version,
      ALLUSERS: '1',
      MsiHiddenProperties: 'TOKEN;RasmonSetup',
    });
    expect(properties.SecureCustomProperties!.split(';')).toEqual(expect.arrayContaining([...MSI_PUBLIC_PROPERTIES]));
    // The service through the MSI's own tables: automatic, own process, LocalSystem (no account).
    const [service] = msiTable(MSI_PATH, 'ServiceInstall');
    expect(service!.slice(1, 10)).toEqual(['rasmon-agent', 'rasmon agent', '16', '2', '1', '', '', '', '']);
    expect(service![10]).toBe('service run --config "[CommonAppDataFolder]rasmon\\agent.yaml"');
    // Start on install, stop on install and uninstall, delete on uninstall; wait for each.
    const [control] = msiTable(MSI_PATH, 'ServiceControl');
    expect(control!.slice(1, 5)).toEqual(['rasmon-agent', String(0x1 | 0x2 | 0x20 | 0x80), '', '1']);
    const actions = Object.fromEntries(msiTable(MSI_PATH, 'CustomAction').map(([name, type]) => [name, Number(type)]));
    const HIDE_TARGET = 0x2000;
    expect(actions.SetRasmonSetup! & HIDE_TARGET).toBe(HIDE_TARGET);
    expect(actions.RasmonSetup! & HIDE_TARGET).toBe(HIDE_TARGET);
    // Deferred (0x400), as SYSTEM (0x800).
    expect(actions.RasmonSetup! & 0xc00).toBe(0xc00);
    const sequence = Object.fromEntries(
      msiTable(MSI_PATH, 'InstallExecuteSequence').map(([name, , order]) => [name, Number(order)]),
    );
    expect(sequence.RemoveExistingProducts).toBeLessThan(sequence.InstallInitialize);
    expect(sequence.RasmonSetup).toBeGreaterThan(sequence.InstallServices);
    expect(sequence.RasmonSetup).toBeLessThan(sequence.StartServices);
    expect(sequence.RasmonRemoveData).toBeGreaterThan(sequence.DeleteServices);
    expect(sequence.RasmonRemoveData).toBeLessThan(sequence.RemoveFiles);
  });

  it('refuses an install without a token: the reason is in the MSI log and nothing stays installed', async () => {
    const run = await msiexec.run('/i', windowsPath(MSI_PATH), {
      COLLECTOR: `ws://127.0.0.1:${port}`,
      FARM,
      HOSTNAME: HOST,
    });
    expect(run.code).toBe(INSTALL_FAILURE);
    expect(Msiexec.stepLines(run.log)).toContain(
      'missing TOKEN or TOKENFILE: a new install needs COLLECTOR, FARM and TOKEN or TOKENFILE (or CONFIGFILE)',
    );
    expect(run.log).toMatch(/rasmon agent setup failed \(exit code 2\): .*missing TOKEN or TOKENFILE/);
    expect(await serviceState()).toBeUndefined();
    expect(existsSync(join(programDir, 'rasmon-agent.exe'))).toBe(false);
    expect(existsSync(data)).toBe(false);
    expect((await regQuery(uninstallKey(current.productCode))).code).not.toBe(0);
  });

  it('refuses a TOKEN the collector refuses, before writing anything', async () => {
    // TOKEN reaches the step in its environment: a refusal shows it got there.
    const run = await msiexec.run('/i', windowsPath(MSI_PATH), {
      COLLECTOR: `ws://127.0.0.1:${port}`,
      FARM,
      HOSTNAME: HOST,
      TOKEN: 'not-the-token',
    });
    expect(run.code).toBe(INSTALL_FAILURE);
    expect(run.log).toMatch(/refused the token \(HTTP 401\): not installed/);
    expect(await serviceState()).toBeUndefined();
    expect(existsSync(data)).toBe(false);
  });

  it('installs silently from properties: the service runs and its sessions reach the collector', async () => {
    const run = await msiexec.run('/i', windowsPath(MSI_PATH), {
      COLLECTOR: `ws://127.0.0.1:${port}`,
      FARM,
      TOKENFILE: 'C:\\share\\token',
      HOSTNAME: HOST,
      SOURCE: 'simulate',
    });
    expect(run.code, run.log).toBe(0);
    const lines = Msiexec.stepLines(run.log);
    expect(lines).toContain('configuration C:\\ProgramData\\rasmon\\agent.yaml: written from the properties');
    expect(lines).toContain(
      `farm ${FARM}, host ${HOST}, source simulate, collector ws://127.0.0.1:${port}, token file C:\\ProgramData\\rasmon\\token`,
    );
    expect(lines.some((line) => /^collector .* accepted the token for farm farm-m, host rdsh-m1/.test(line))).toBe(
      true,
    );
    expect(lines).toContain(
      'service rasmon-agent: restarted 10 s, 60 s and 5 minutes after a failure (count reset after a day)',
    );
    // TOKENFILE names the token: its content never reaches the log.
    expect(run.log).not.toContain(TOKEN);

    expect(await serviceState()).toBe('RUNNING');
    const status = await installedStatus();
    expect(status.stdout).toMatch(/^rasmon-agent: running \(pid \d+\)\r?\n$/);
    expect(status.code).toBe(0);
    const service = await regQuery('HKLM\\SYSTEM\\CurrentControlSet\\Services\\rasmon-agent');
    expect(service.stdout).toMatch(
      /ImagePath\s+REG_SZ\s+"?C:\\Program Files\\rasmon\\rasmon-agent\.exe"? service run --config "C:\\ProgramData\\rasmon\\agent\.yaml"/,
    );
    expect(service.stdout).toMatch(/Start\s+REG_DWORD\s+0x2/);
    expect(service.stdout).toMatch(/ObjectName\s+REG_SZ\s+LocalSystem/);
    expect(service.stdout).toMatch(/Description\s+REG_SZ\s+Streams this RD Session Host/);
    expect((await regQuery(EVENT_SOURCE_KEY)).stdout).toMatch(
      /EventMessageFile\s+REG_EXPAND_SZ\s+%SystemRoot%\\Microsoft\.NET\\Framework64\\v4\.0\.30319\\EventLogMessages\.dll/,
    );
    // Add/Remove Programs.
    const entry = await regQuery(uninstallKey(current.productCode));
    expect(entry.stdout).toMatch(/DisplayName\s+REG_SZ\s+rasmon agent/);
    expect(entry.stdout).toMatch(new RegExp(`DisplayVersion\\s+REG_SZ\\s+${current.version.replaceAll('.', '\\.')}`));
    expect(entry.stdout).toMatch(/Publisher\s+REG_SZ\s+rasmon/);

    expect(parseYaml(readFileSync(join(data, 'agent.yaml'), 'utf8'))).toEqual({
      collector: `ws://127.0.0.1:${port}`,
      farm: FARM,
      host: HOST,
      source: 'simulate',
      tokenFile: 'C:\\ProgramData\\rasmon\\token',
      spool: { dir: 'C:\\ProgramData\\rasmon\\spool' },
    });
    expect(readFileSync(join(data, 'token'), 'utf8')).toBe(`${TOKEN}\n`);

    await expect.poll(() => agentHosts(), { timeout: 60_000 }).toEqual([HOST]);
    await expect.poll(() => farmConnections(), { timeout: 60_000 }).toBeGreaterThan(0);
  });

  it('upgrades to a newer build, keeping configuration, token, spool stream and host', async () => {
    const config = readFileSync(join(data, 'agent.yaml'), 'utf8');
    const token = readFileSync(join(data, 'token'), 'utf8');
    const stream = spoolStream();
    const run = await msiexec.run('/i', windowsPath(NEXT_MSI));
    expect(run.code, run.log).toBe(0);
    expect(Msiexec.stepLines(run.log)).toContain(
      'configuration C:\\ProgramData\\rasmon\\agent.yaml: kept from the earlier install (C:\\ProgramData\\rasmon\\agent.yaml)',
    );
    // One product in Add/Remove Programs: the newer one.
    expect((await regQuery(uninstallKey(current.productCode))).code).not.toBe(0);
    expect((await regQuery(uninstallKey(next.productCode))).stdout).toMatch(
      new RegExp(`DisplayVersion\\s+REG_SZ\\s+${next.version.replaceAll('.', '\\.')}`),
    );
    expect(readFileSync(join(data, 'agent.yaml'), 'utf8')).toBe(config);
    expect(readFileSync(join(data, 'token'), 'utf8')).toBe(token);
    expect(await serviceState()).toBe('RUNNING');
    await expect.poll(() => agentHosts(), { timeout: 60_000 }).toEqual([HOST]);
    await expect.poll(() => farmConnections(), { timeout: 60_000 }).toBeGreaterThan(0);
    // The same spool stream: the collector sees the same agent go on, not a new one.
    expect(spoolStream()).toBe(stream);
  });

  it('uninstalls: the service, its event source and the program files go; ProgramData stays', async () => {
    const run = await msiexec.run('/x', next.productCode);
    expect(run.code, run.log).toBe(0);
    expect(await serviceState()).toBeUndefined();
    expect(existsSync(join(programDir, 'rasmon-agent.exe'))).toBe(false);
    expect((await regQuery(EVENT_SOURCE_KEY)).code).not.toBe(0);
    expect((await regQuery(uninstallKey(next.productCode))).code).not.toBe(0);
    expect(existsSync(join(data, 'agent.yaml'))).toBe(true);
    expect(existsSync(join(data, 'token'))).toBe(true);
    expect(existsSync(join(data, 'spool', 'state.json'))).toBe(true);
  });

  it("installs the admin's own CONFIGFILE while its collector is down: a warning, then it connects", async () => {
    const laterPort = await freePort();
    const sessions: Session[] = [
      { id: '1-a', user: 'CORP\\alice', admin: false, kind: 'desktop', via: 'ras', state: 'active', since: Date.now() },
    ];
    writeFileSync(join(share, 'sessions.json'), JSON.stringify(sessions));
    writeFileSync(
      join(share, 'own-agent.yaml'),
      [
        '# The admin’s own configuration.',
        `collector: ws://127.0.0.1:${laterPort}`,
        `farm: ${FARM}`,
        `host: ${OWN_HOST}`,
        'tokenFile: C:\\share\\token',
        'source: command',
        'command: type C:\\share\\sessions.json',
        'pollIntervalSeconds: 1',
        'reconnect:',
        '  initialSeconds: 0.2',
        '  maxSeconds: 1',
        '',
      ].join('\r\n'),
    );
    const run = await msiexec.run('/i', windowsPath(MSI_PATH), { CONFIGFILE: 'C:\\share\\own-agent.yaml' });
    expect(run.code, run.log).toBe(0);
    const lines = Msiexec.stepLines(run.log);
    expect(lines).toContain('configuration C:\\ProgramData\\rasmon\\agent.yaml: copied from CONFIGFILE');
    expect(
      lines.some((line) =>
        /^WARNING collector ws:\/\/127\.0\.0\.1:\d+: unreachable: .*; installed anyway: the service keeps retrying/.test(
          line,
        ),
      ),
    ).toBe(true);
    expect(readFileSync(join(data, 'agent.yaml'), 'utf8')).toBe(readFileSync(join(share, 'own-agent.yaml'), 'utf8'));
    expect(await serviceState()).toBe('RUNNING');

    const later = await InProcessCollector.start(
      rawConfig(redis.url, [{ id: FARM, seats: 1000, token: TOKEN }], { listen: `127.0.0.1:${laterPort}` }),
    );
    try {
      await expect.poll(() => agentHosts(laterPort), { timeout: 60_000 }).toContain(OWN_HOST);
      await expect
        .poll(
          async () =>
            (await scrape(laterPort)).value('ras_connections', {
              farm: FARM,
              kind: 'desktop',
              via: 'ras',
              admin: 'false',
              session_state: 'active',
            }),
          { timeout: 60_000 },
        )
        .toBe(1);
    } finally {
      await later.stop();
    }
  });

  it('uninstall with REMOVEDATA=1 removes ProgramData\\rasmon too', async () => {
    const run = await msiexec.run('/x', current.productCode, { REMOVEDATA: '1' });
    expect(run.code, run.log).toBe(0);
    expect(Msiexec.stepLines(run.log)).toContain(
      'C:\\ProgramData\\rasmon: removed (configuration, token, spool and logs)',
    );
    expect(await serviceState()).toBeUndefined();
    expect(existsSync(data)).toBe(false);
    expect(existsSync(join(programDir, 'rasmon-agent.exe'))).toBe(false);
  });
});
