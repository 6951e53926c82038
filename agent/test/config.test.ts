import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentConfigError, connectionSettings, insecureCollector, loadAgentConfig, readToken } from '../src/config.js';

function file(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'rasmon-agent-config-')), name);
  writeFileSync(path, text);
  return path;
}

const expectError = (fn: () => unknown, message: string | RegExp) => {
  expect(fn).toThrow(AgentConfigError);
  expect(fn).toThrow(message);
};

describe('agent configuration', () => {
  it('applies the documented defaults', () => {
    const config = loadAgentConfig(file('a.yaml', 'farm: farm-a\nhost: rdsh-1\n'));
    expect(config).toMatchObject({
      source: 'wts',
      // Session events wake the wts source; its poll is a safety net.
      pollIntervalSeconds: 60,
      snapshotIntervalSeconds: 600,
      spool: { maxBytes: 64 * 1024 * 1024 },
      classify: { appProcesses: ['rdpinit.exe', 'rdpshell.exe'], rasGateways: [], includeConsole: false },
      reconnect: { initialSeconds: 1, maxSeconds: 60, supersededSeconds: 60 },
    });
  });

  it('polls every 5 s by default with the sources that hear of no session change, as configured otherwise', () => {
    for (const source of ['quser', 'command', 'simulate']) {
      expect(
        loadAgentConfig(file('a.yaml', `farm: farm-a\nhost: rdsh-1\nsource: ${source}\n`)).pollIntervalSeconds,
      ).toBe(5);
    }
    expect(
      loadAgentConfig(file('a.yaml', 'farm: farm-a\nhost: rdsh-1\npollIntervalSeconds: 20\n')).pollIntervalSeconds,
    ).toBe(20);
  });

  it('defaults the host to the machine name', () => {
    const name = hostname().split('.')[0]!;
    expect(loadAgentConfig(file('a.json', '{"farm":"farm-a"}')).host).toBe(name);
  });

  it("lets flags win over the file, the spool directory without losing the file's spool size", () => {
    const path = file('a.yaml', 'farm: farm-a\nhost: rdsh-1\nsource: quser\nspool: { dir: /x, maxBytes: 8192 }\n');
    const config = loadAgentConfig(path, { host: 'rdsh-2', source: 'simulate', spoolDir: '/y' });
    expect(config).toMatchObject({ host: 'rdsh-2', source: 'simulate', spool: { dir: '/y', maxBytes: 8192 } });
  });

  it('names the file, the bad key and the value given, in one line', () => {
    const typo = file('a.yaml', 'farm: farm-a\nsoruce: wts\n');
    expectError(() => loadAgentConfig(typo), `config file ${typo}: soruce: unknown key`);
    const http = file('a.yaml', 'collector: http://x\n');
    expectError(
      () => loadAgentConfig(http),
      `config file ${http}: collector: must be a ws:// or wss:// URL (got "http://x")`,
    );
    const magic = file('a.yaml', 'source: magic\n');
    expectError(
      () => loadAgentConfig(magic),
      `config file ${magic}: source: must be one of wts, quser, command, simulate (got "magic")`,
    );
    expectError(
      () => loadAgentConfig(undefined, { source: 'magic' }),
      '--source: must be one of wts, quser, command, simulate (got "magic")',
    );
    expectError(
      () => loadAgentConfig(file('a.yaml', 'classify: { rasGateways: ["10.0.0.0/99"] }\n')),
      /: classify\.rasGateways\[0\]: .*\(got "10\.0\.0\.0\/99"\)$/,
    );
    expectError(
      () => loadAgentConfig(file('a.yaml', 'pollIntervalSeconds: 0\n')),
      /: pollIntervalSeconds: .*\(got 0\)$/,
    );
    expectError(() => loadAgentConfig(file('a.yaml', 'host: "bad host"\n')), /^config file .*: host: .*"bad host"/);
    expectError(
      () => loadAgentConfig(file('a.yaml', 'log: { format: xml }\n')),
      /: log\.format: must be one of text, json \(got "xml"\)$/,
    );
    expectError(() => loadAgentConfig(file('a.txt', 'farm: a\n')), /must end in \.yaml, \.yml or \.json/);
    expectError(() => loadAgentConfig('/no/such/file.yaml'), 'config file /no/such/file.yaml: cannot be read');
    expectError(() => loadAgentConfig(file('a.yaml', 'farm: [\n')), /^config file .*a\.yaml: /);
  });

  it('reads an agent.json saved with a byte-order mark, as Notepad saves it', () => {
    expect(loadAgentConfig(file('agent.json', '\uFEFF{"farm":"farm-a","host":"rdsh-1"}')).farm).toBe('farm-a');
  });

  it('needs collector, tokenFile and farm to connect', () => {
    const partial = file('a.yaml', 'farm: farm-a\n');
    expectError(
      () => connectionSettings(loadAgentConfig(partial)),
      `config file ${partial}: collector: required to connect to a collector`,
    );
    const ok = loadAgentConfig(file('a.yaml', 'farm: farm-a\ncollector: wss://c:9420\ntokenFile: /t\n'));
    expect(connectionSettings(ok)).toEqual({ collector: 'wss://c:9420', tokenFile: '/t', farm: 'farm-a' });
  });

  it('refuses ws:// to a collector on another machine, naming the key, unless allowInsecure: true', () => {
    for (const collector of [
      'ws://collector:9420',
      'ws://10.0.0.5:9420',
      'ws://rasmon.corp.example',
      'ws://[2001:db8::1]:9420',
      'ws://128.0.0.1',
    ]) {
      const path = file('a.yaml', `farm: farm-a\ncollector: "${collector}"\n`);
      expectError(
        () => loadAgentConfig(path),
        new RegExp(
          `^config file ${path}: collector: ws:// sends the token and user names in clear to .*, which is not this machine; use wss:// .*or set allowInsecure: true`,
        ),
      );
      expect(insecureCollector(collector), collector).toBe(true);
      const allowed = loadAgentConfig(file('a.yaml', `farm: farm-a\ncollector: "${collector}"\nallowInsecure: true\n`));
      expect(allowed).toMatchObject({ collector, allowInsecure: true });
    }
    expectError(
      () => loadAgentConfig(undefined, { collector: 'ws://collector:9420' }),
      /^--collector: ws:\/\/ sends the token and user names in clear to collector, which is not this machine/,
    );
    expectError(() => loadAgentConfig(file('a.yaml', 'allowInsecure: "yes"\n')), /allowInsecure: .*boolean/);
  });

  it('takes ws:// to this very machine, and wss:// to any', () => {
    for (const collector of [
      'ws://127.0.0.1:9420',
      'ws://127.8.9.10',
      'ws://localhost:9420',
      'ws://LocalHost',
      'ws://[::1]:9420',
      'wss://collector:9420',
      'wss://10.0.0.5',
    ]) {
      expect(insecureCollector(collector), collector).toBe(false);
      expect(loadAgentConfig(file('a.yaml', `farm: farm-a\ncollector: "${collector}"\n`))).toMatchObject({
        collector,
        allowInsecure: false,
      });
    }
  });

  it('reads the token from the first line of its file, and refuses an empty one', () => {
    expect(readToken(file('token', 's3cret\r\nignored\n'))).toBe('s3cret');
    expect(readToken(file('token', '\uFEFFs3cret\n'))).toBe('s3cret');
    expectError(
      () => readToken(file('token', '\n')),
      /^tokenFile: .* is empty; put the agent token .* on its first line$/,
    );
    expectError(
      () => readToken('/no/token', { file: '/etc/rasmon/agent.yaml' }),
      "config file /etc/rasmon/agent.yaml: tokenFile: /no/token does not exist; create it with the agent token (the collector's farm token) on its first line, or correct the path",
    );
    expectError(
      () => readToken(tmpdir()),
      /^tokenFile: .* is a directory; give the path of the file holding the agent token/,
    );
  });
});

describe('examples/agent.yaml', () => {
  it('is a valid configuration with Windows paths', () => {
    const path = new URL('../../examples/agent.yaml', import.meta.url).pathname;
    const config = loadAgentConfig(path);
    expect(connectionSettings(config)).toEqual({
      collector: 'wss://rasmon.corp.example:9420',
      tokenFile: 'C:\\ProgramData\\rasmon\\token',
      farm: 'farm-a',
    });
    expect(config).toMatchObject({
      source: 'wts',
      spool: { dir: 'C:\\ProgramData\\rasmon\\spool' },
      classify: { adminGroups: ['CORP\\RDS-Admins'], rasGateways: ['10.0.10.0/24'] },
      log: { format: 'json', maxBytes: 8 * 1024 * 1024, maxFiles: 3 },
    });
  });
});
