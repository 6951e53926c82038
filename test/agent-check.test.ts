/**
 * `rasmon-agent check` (the Linux agent) against a real collector: a real hello and welcome with the
 * good token, exit 0; the bad token refused with 401, exit 1. The exe's own check runs under wine in
 * windows-service.test.ts.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessCollector, rawConfig } from './support/collector-harness.js';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';

const BIN = new URL('../agent/bin/rasmon-agent.js', import.meta.url).pathname;
const FARM = 'farm-c';
const TOKEN = 'token-farm-c';

const redis = useRedis();
let collector: InProcessCollector;
let dir: string;

/** Runs the bin asynchronously: the collector answering it lives in this process. */
function agent(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function config(name: string, extra: Record<string, unknown>): string {
  const sessions = join(dir, 'sessions.json');
  writeFileSync(
    sessions,
    JSON.stringify([
      { id: '1-a', user: 'CORP\\alice', admin: false, kind: 'desktop', via: 'ras', state: 'active', since: Date.now() },
    ]),
  );
  const path = join(dir, name);
  writeFileSync(
    path,
    JSON.stringify({
      collector: collector.url.replace('http://', 'ws://'),
      tokenFile: join(dir, 'token'),
      farm: FARM,
      host: 'rdsh-c1',
      source: 'command',
      command: `cat ${sessions}`,
      spool: { dir: join(dir, 'spool') },
      ...extra,
    }),
  );
  return path;
}

describe('rasmon-agent check', () => {
  beforeAll(async () => {
    collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: FARM, seats: 5, token: TOKEN }]));
    dir = mkdtempSync(join(tmpdir(), 'rasmon-check-'));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'bad-token'), 'wrong\n', { mode: 0o600 });
  });
  afterAll(async () => {
    await collector?.stop();
  });

  it('says ok on one line each, after a real welcome, and exits 0', async () => {
    const run = await agent('check', '--config', config('good.json', {}));
    expect(run.stdout.trim().split('\n')).toEqual([
      `ok   token file ${join(dir, 'token')} reads; only its owner can read it`,
      'ok   source command lists 1 session',
      `ok   collector ${collector.url.replace('http://', 'ws://')} accepted the token for farm farm-c, host rdsh-c1 (welcome, ack 0)`,
    ]);
    expect(run.code).toBe(0);
  });

  it('fails a token file its group or other users can read, naming the file and chmod 600, and exits 1', async () => {
    const shared = join(dir, 'shared-token');
    writeFileSync(shared, `${TOKEN}\n`);
    for (const [mode, who] of [
      [0o644, 'its group and other users'],
      [0o640, 'its group'],
      [0o602, 'other users'],
    ] as const) {
      chmodSync(shared, mode);
      const run = await agent('check', '--config', config('shared.json', { tokenFile: shared }));
      const lines = run.stdout.trim().split('\n');
      expect(lines[0]).toBe(
        `FAIL token file ${shared} reads, but ${who} can read or change it too (mode 0${mode.toString(8)}): run chmod 600 ${shared}`,
      );
      // The rest is still checked with that token.
      expect(lines[2]).toMatch(/^ok {3}collector .* accepted the token/);
      expect(run.code).toBe(1);
    }
    chmodSync(shared, 0o400);
    const fixed = await agent('check', '--config', config('shared.json', { tokenFile: shared }));
    expect(fixed.stdout).toContain(`ok   token file ${shared} reads; only its owner can read it`);
    expect(fixed.code).toBe(0);
  });

  it('refuses ws:// to a collector on another machine before trying anything, unless allowInsecure', async () => {
    const run = await agent('check', '--config', config('remote.json', { collector: 'ws://192.0.2.10:9420' }));
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(
      `collector: ws:// sends the token and user names in clear to 192.0.2.10, which is not this machine; use wss://`,
    );
    expect(run.stderr).toContain(join(dir, 'remote.json'));
    expect(run.code).toBe(2);
  });

  it('exits 1 when the collector refuses the token, saying so', async () => {
    const run = await agent('check', '--config', config('bad.json', { tokenFile: join(dir, 'bad-token') }));
    expect(run.stdout).toContain(
      `FAIL collector ${collector.url.replace('http://', 'ws://')}: refused the token (HTTP 401)`,
    );
    expect(run.code).toBe(1);
  });

  it('exits 1 for a missing token file, an unreachable collector and a failing source, one line each', async () => {
    const port = await freePort();
    const run = await agent(
      'check',
      '--config',
      config('broken.json', {
        tokenFile: join(dir, 'missing'),
        collector: `ws://127.0.0.1:${port}`,
        command: 'exit 3',
      }),
    );
    const lines = run.stdout.trim().split('\n');
    expect(lines[0]).toBe(
      `FAIL token file ${join(dir, 'missing')} does not exist; create it with the agent token (the collector's farm token) on its first line, or correct the path`,
    );
    expect(lines[1]).toMatch(/^FAIL source command cannot list the sessions: command exited 3/);
    expect(lines[2]).toBe(`FAIL collector ws://127.0.0.1:${port}: not tried without a token`);
    expect(run.code).toBe(1);

    const unreachable = await agent(
      'check',
      '--config',
      config('unreachable.json', { collector: `ws://127.0.0.1:${port}` }),
    );
    expect(unreachable.stdout).toMatch(
      new RegExp(`^FAIL collector ws://127\\.0\\.0\\.1:${port}: unreachable: .*ECONNREFUSED`, 'm'),
    );
    expect(unreachable.code).toBe(1);
  });
});
