import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { agentFromConfig } from '../src/agent-setup.js';
import { loadAgentConfig } from '../src/config.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** The agent built from `collector` (allowInsecure when asked), and the warnings it logged meanwhile. */
async function build(collector: string, allowInsecure: boolean): Promise<Array<{ level: number; msg: string }>> {
  dir = mkdtempSync(join(tmpdir(), 'rasmon-agent-setup-'));
  writeFileSync(join(dir, 'token'), 'token\n', { mode: 0o600 });
  const path = join(dir, 'agent.json');
  writeFileSync(
    path,
    JSON.stringify({
      collector,
      allowInsecure,
      tokenFile: join(dir, 'token'),
      farm: 'farm-a',
      host: 'rdsh-1',
      source: 'simulate',
      spool: { dir: join(dir, 'spool') },
    }),
  );
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  await agentFromConfig(loadAgentConfig(path), log);
  // Info lines (a new host key) are not what these tests are about.
  return lines.filter((line) => line.level >= 40);
}

describe('an agent allowed ws:// to another machine', () => {
  it('warns when it is built, every start, that the token and user names go in clear', async () => {
    const lines = await build('ws://192.0.2.10:9420', true);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'allowInsecure: the token and user names go to a collector on another machine in clear (ws://); use wss:// outside a lab',
      }),
    ]);
  });

  it('says nothing for wss://, nor for ws:// to this machine', async () => {
    expect(await build('wss://192.0.2.10:9420', true)).toEqual([]);
    expect(await build('ws://127.0.0.1:9420', false)).toEqual([]);
  });
});
