/** The agent's log: text and JSON lines as a person reads them, and a file that rotates within bounds. */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAgentLogger, textLine } from '../src/agent-log.js';
import { RotatingFile } from '../src/rotating-file.js';

function captured() {
  const chunks: string[] = [];
  return { destination: { write: (chunk: string) => void chunks.push(chunk) }, text: () => chunks.join('') };
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/;

describe('log.format', () => {
  it('text: ISO time, level name, message, fields as key=value, token redacted', () => {
    const out = captured();
    const log = createAgentLogger({ format: 'text', destination: out.destination, level: 'info' });
    log
      .child({ module: 'link' })
      .warn({ status: 401, token: 's3cret', reason: 'two words' }, 'collector refused the token');
    const line = out.text();
    expect(line).toMatch(ISO);
    expect(line).toMatch(
      /Z WARN {2}collector refused the token module=link status=401 token=\[redacted\] reason="two words"\n$/,
    );
    expect(line).not.toContain('s3cret');
    expect(line.split('\n')).toHaveLength(2);
  });

  it('text: an error shows its type, message and code, and its stack from level error on', () => {
    const err = Object.assign(new Error('disk full'), { code: 'ENOSPC' });
    const warn = textLine({
      level: 40,
      time: 0,
      msg: 'spool write failed',
      err: { type: 'Error', message: 'disk full', code: 'ENOSPC', stack: err.stack },
    });
    expect(warn).toBe('1970-01-01T00:00:00.000Z WARN  spool write failed err="Error: disk full" code=ENOSPC\n');
    const error = textLine({
      level: 50,
      time: 0,
      msg: 'stop failed',
      err: { type: 'Error', message: 'x', stack: 'Error: x\n    at here' },
    });
    expect(error).toContain('\n    Error: x\n        at here\n');
  });

  it('json: one JSON object a line, ISO time and level name', () => {
    const out = captured();
    createAgentLogger({ format: 'json', destination: out.destination, level: 'info' }).info({ sessions: 3 }, 'polled');
    const record = JSON.parse(out.text()) as Record<string, unknown>;
    expect(record).toMatchObject({ level: 'info', msg: 'polled', sessions: 3, name: 'rasmon-agent' });
    expect(record.time).toMatch(ISO);
  });
});

describe('the rotating log file', () => {
  it('rotates by size and keeps at most maxFiles old files, the newest as .1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rasmon-agent-log-'));
    const file = join(dir, 'rasmon-agent.log');
    const out = new RotatingFile(file, { maxBytes: 1000, maxFiles: 3 });
    for (let i = 0; i < 100; i += 1) out.write(`${String(i).padStart(3, '0')} ${'x'.repeat(95)}\n`);
    out.close();
    expect(readdirSync(dir).sort()).toEqual([
      'rasmon-agent.log',
      'rasmon-agent.log.1',
      'rasmon-agent.log.2',
      'rasmon-agent.log.3',
    ]);
    for (const name of readdirSync(dir)) expect(statSync(join(dir, name)).size).toBeLessThanOrEqual(1000);
    expect(readFileSync(file, 'utf8').split('\n')[0]).toMatch(/^090 /);
    expect(readFileSync(`${file}.1`, 'utf8').split('\n')[0]).toMatch(/^080 /);
    expect(readFileSync(`${file}.3`, 'utf8').split('\n')[0]).toMatch(/^060 /);
  });

  it('appends to the file an earlier run left, rotating it first when already full', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rasmon-agent-log-'));
    const file = join(dir, 'a.log');
    let out = new RotatingFile(file, { maxBytes: 100, maxFiles: 2 });
    out.write('a'.repeat(60));
    out.close();
    out = new RotatingFile(file, { maxBytes: 100, maxFiles: 2 });
    out.write('b'.repeat(30));
    out.close();
    expect(readFileSync(file, 'utf8')).toBe(`${'a'.repeat(60)}${'b'.repeat(30)}`);
    out = new RotatingFile(file, { maxBytes: 90, maxFiles: 2 });
    out.write('c');
    out.close();
    expect(readFileSync(file, 'utf8')).toBe('c');
    expect(readFileSync(`${file}.1`, 'utf8')).toHaveLength(90);
  });
});
