import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { HostKeyError, loadHostKey, readHostKey } from '../src/link/host-key.js';

const log = pino({ level: 'silent' });
const dir = () => join(mkdtempSync(join(tmpdir(), 'rasmon-host-key-')), 'spool');

describe('host key', () => {
  it('is made once, 43 base64url characters in a 0600 file, and read back the same', () => {
    const spool = dir();
    expect(readHostKey(spool)).toBeUndefined();
    const key = loadHostKey(spool, { log });
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(readFileSync(join(spool, 'host-key'), 'utf8')).toBe(`${key}\n`);
    if (process.platform !== 'win32') expect(statSync(join(spool, 'host-key')).mode & 0o777).toBe(0o600);
    expect(loadHostKey(spool, { log })).toBe(key);
    expect(readHostKey(spool)).toBe(key);
    expect(loadHostKey(dir(), { log })).not.toBe(key);
  });

  it('locks the new file before the key is written into it', () => {
    const spool = dir();
    const seen: string[] = [];
    const key = loadHostKey(spool, { log, secure: (path) => seen.push(readFileSync(path, 'utf8')) });
    expect(seen).toEqual(['']);
    expect(readHostKey(spool)).toBe(key);
  });

  it('refuses a file that holds no key, and leaves it as it is', () => {
    const spool = dir();
    loadHostKey(spool, { log });
    writeFileSync(join(spool, 'host-key'), 'not a key\n');
    expect(() => loadHostKey(spool, { log })).toThrow(HostKeyError);
    expect(() => readHostKey(spool)).toThrow(/rebind-host/);
    expect(readFileSync(join(spool, 'host-key'), 'utf8')).toBe('not a key\n');
  });

  it.skipIf(process.platform === 'win32')('takes back a key file that others could read', () => {
    const spool = dir();
    const key = loadHostKey(spool, { log });
    chmodSync(join(spool, 'host-key'), 0o644);
    expect(loadHostKey(spool, { log })).toBe(key);
    expect(statSync(join(spool, 'host-key')).mode & 0o777).toBe(0o600);
  });
});
