import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { preparePrivateDirectory, SpoolDirectoryError, writePrivateFileAtomic } from '../src/link/private-files.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const mode = (path: string) => statSync(path).mode & 0o7777;

function logged(): { log: pino.Logger; lines: Array<{ msg: string }> } {
  const lines: Array<{ msg: string }> = [];
  const log = pino(
    { level: 'info' },
    { write: (line: string) => void lines.push(JSON.parse(line) as { msg: string }) },
  );
  return { log, lines };
}

describe.skipIf(process.platform === 'win32')('the spool folder belongs to the agent alone (Unix modes)', () => {
  it('narrows its own folder and files, but never follows a link out of the folder', () => {
    dir = mkdtempSync(join(tmpdir(), 'rasmon-private-'));
    const spool = join(dir, 'spool');
    mkdirSync(spool, { mode: 0o755 });
    chmodSync(spool, 0o755);
    writeFileSync(join(spool, 'state.json'), '{}');
    chmodSync(join(spool, 'state.json'), 0o644);
    const outside = join(dir, 'outside.txt');
    writeFileSync(outside, 'not the agent’s');
    chmodSync(outside, 0o644);
    symlinkSync(outside, join(spool, 'link.json'));
    const { log, lines } = logged();
    preparePrivateDirectory(spool, log);
    expect(mode(spool)).toBe(0o700);
    expect(mode(join(spool, 'state.json'))).toBe(0o600);
    expect(mode(outside)).toBe(0o644);
    expect(lines.map((line) => line.msg)).toEqual([
      'spool folder was open to other users: now 0700',
      'spool files were readable by other users: now 0600',
    ]);
    // Already private: nothing to say the second time.
    const again = logged();
    preparePrivateDirectory(spool, again.log);
    expect(again.lines).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)('leaves a folder another account owns as it is, and says so', () => {
    dir = mkdtempSync(join(tmpdir(), 'rasmon-private-'));
    const spool = join(dir, 'theirs');
    mkdirSync(spool);
    chmodSync(spool, 0o755);
    chownSync(spool, 65534, 65534);
    const { log, lines } = logged();
    preparePrivateDirectory(spool, log);
    expect(mode(spool)).toBe(0o755);
    expect(lines.map((line) => line.msg)).toEqual([
      'spool folder is open to other users and belongs to another account: the agent cannot narrow it',
    ]);
  });

  it('refuses a folder every user may write to, sticky or not', () => {
    dir = mkdtempSync(join(tmpdir(), 'rasmon-private-'));
    for (const shared of [0o1777, 0o777, 0o733]) {
      const path = join(dir, shared.toString(8));
      mkdirSync(path);
      chmodSync(path, shared);
      expect(() => preparePrivateDirectory(path, logged().log)).toThrow(SpoolDirectoryError);
      expect(mode(path)).toBe(shared);
    }
  });

  it('replaces a file 0600 even under umask 000', async () => {
    dir = mkdtempSync(join(tmpdir(), 'rasmon-private-'));
    const previous = process.umask(0);
    try {
      await writePrivateFileAtomic(join(dir, 'state.json'), '{}');
    } finally {
      process.umask(previous);
    }
    expect(mode(join(dir, 'state.json'))).toBe(0o600);
  });
});
