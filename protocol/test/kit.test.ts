import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  CONFIG_FILE_MAX_BYTES,
  ConfigFileError,
  createRootLogger,
  formatIssue,
  RasmonError,
  readConfigFile,
  reportIssue,
  writeFileAtomic,
} from '../src/kit/index.js';

const dir = mkdtempSync(join(tmpdir(), 'rasmon-kit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, content: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function refusal(path: string): ConfigFileError {
  try {
    readConfigFile(path);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigFileError);
    return err as ConfigFileError;
  }
  throw new Error(`${path} was accepted`);
}

describe('readConfigFile', () => {
  it('reads JSON and YAML saved with a byte-order mark, as Notepad does', () => {
    expect(readConfigFile(file('bom.json', '\uFEFF{"farm":"farm-a"}'))).toEqual({ farm: 'farm-a' });
    expect(readConfigFile(file('bom.yaml', '\uFEFFfarm: farm-a\n'))).toEqual({ farm: 'farm-a' });
  });

  it('gives the line and column of a JSON syntax error', () => {
    const error = refusal(file('bad.json', '{\n  "farm": "a",\n}\n'));
    expect(error.message).toMatch(/^config file .*bad\.json: line 3, column 1: /);
    expect(error.unreadable).toBe(false);
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it('treats a YAML warning as an error: an unknown tag would change a value silently', () => {
    expect(refusal(file('tag.yaml', 'seats: !seats 5\n')).message).toMatch(
      /^config file .*tag\.yaml: line 1, column \d+: /,
    );
  });

  it('refuses a directory, a file that is not regular, and a file larger than the limit', () => {
    mkdirSync(join(dir, 'dir.yaml'));
    expect(refusal(join(dir, 'dir.yaml')).reason).toBe('is a directory');
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    expect(refusal(fifo).reason).toBe('is not a regular file');
    const big = file('big.yaml', `# ${'x'.repeat(CONFIG_FILE_MAX_BYTES)}\n`);
    expect(refusal(big).reason).toBe(`is larger than ${CONFIG_FILE_MAX_BYTES} bytes`);
    expect(readConfigFile(file('small.yaml', 'a: 1\n'), { maxBytes: 6 })).toEqual({ a: 1 });
    expect(() => readConfigFile(file('small2.yaml', 'a: 123\n'), { maxBytes: 6 })).toThrow('is larger than 6 bytes');
  });

  it('names a missing file and an unsupported extension', () => {
    const missing = refusal(join(dir, 'none.yaml'));
    expect(missing.message).toBe(`config file ${join(dir, 'none.yaml')}: not found`);
    expect(missing.unreadable).toBe(true);
    expect(missing.code).toBe('RASMON_CONFIG_FILE');
    expect(refusal(file('c.toml', 'a = 1')).message).toMatch(
      /has unsupported extension "\.toml"; must end in \.yaml, \.yml or \.json$/,
    );
    expect(refusal(file('noext', 'a: 1')).message).toMatch(/has no extension/);
  });
});

describe('formatIssue', () => {
  const schema = z.strictObject({ farms: z.array(z.strictObject({ seats: z.number({ error: 'must be a number' }) })) });

  it('names the key with brackets for indices, an unknown key first', () => {
    const bad = schema.safeParse({ farms: [{ seats: 'x' }] });
    expect(bad.success || formatIssue(bad.error)).toBe('farms[0].seats: must be a number');
    const typo = schema.safeParse({ farms: [{ seets: 1 }] });
    expect(typo.success || formatIssue(typo.error)).toBe('farms[0].seets: unknown key');
    expect(typo.success || formatIssue(typo.error, { prefix: '[3]', unknownKeys: 'field' })).toBe(
      '[3].farms[0]: unknown field "seets"',
    );
  });

  it('says "is required" for an absent key when given the raw input', () => {
    const raw = { farms: [{}] };
    const missing = schema.safeParse(raw);
    expect(missing.success || reportIssue(missing.error, raw)).toEqual({
      key: 'farms[0].seats',
      sentence: 'is required',
    });
    expect(missing.success || formatIssue(missing.error, { prefix: 'config' })).toBe(
      'config.farms[0].seats: must be a number',
    );
  });
});

describe('RasmonError', () => {
  it('keeps a stable code and its cause', () => {
    const cause = new Error('disk');
    const error = new RasmonError('RASMON_X', 'could not', { cause });
    expect(error.code).toBe('RASMON_X');
    expect(error.cause).toBe(cause);
    expect(new RasmonError('RASMON_Y', 'plain')).not.toHaveProperty('cause');
  });
});

describe('createRootLogger', () => {
  function capture() {
    const lines: Array<Record<string, unknown>> = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n'))
          if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    return { lines, stream };
  }

  it('redacts tokens, authorization headers, passwords and host keys wherever they sit', () => {
    const { lines, stream } = capture();
    const log = createRootLogger('test', {}, stream);
    log.info(
      {
        token: 't1',
        headers: { authorization: 'Bearer t2' },
        redis: { password: 'p' },
        authorization: 'x',
        hello: { hostKey: 'k1' },
        hostKey: 'k2',
      },
      'hello',
    );
    const text = JSON.stringify(lines);
    for (const secret of ['t1', 'Bearer t2', '"p"', '"x"', 'k1', 'k2']) expect(text).not.toContain(secret);
    expect(lines[0]).toMatchObject({ name: 'test', msg: 'hello', token: '[redacted]' });
  });

  it('logs an error with its stack, code and cause', () => {
    const { lines, stream } = capture();
    createRootLogger('test', {}, stream).error(
      { err: new RasmonError('RASMON_X', 'outer', { cause: new Error('inner') }) },
      'failed',
    );
    const err = lines[0]?.err as Record<string, unknown>;
    expect(err.code).toBe('RASMON_X');
    expect(err.stack).toMatch(/outer/);
    expect(JSON.stringify(err)).toContain('inner');
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file whole and leaves no temporary file behind', async () => {
    const path = join(dir, 'state.json');
    await writeFileAtomic(path, '{"a":1}');
    await writeFileAtomic(path, '{"a":2}');
    expect(readFileSync(path, 'utf8')).toBe('{"a":2}');
    expect(readdirSync(dir).filter((name) => name.startsWith('state.json'))).toEqual(['state.json']);
  });
});
