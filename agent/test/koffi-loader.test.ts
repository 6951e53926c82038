import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { koffiDirectory, removeStaleKoffiCopies } from '../src/windows/koffi-loader.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe("koffi's runtime folder", () => {
  it('sits beside the spool folder, as the logs do, never under %TEMP%', () => {
    expect(koffiDirectory('/var/lib/rasmon-agent/spool')).toBe('/var/lib/rasmon-agent/runtime');
    expect(koffiDirectory('/srv/rasmon/spool/')).toBe('/srv/rasmon/runtime');
  });

  it('removes earlier copies one file at a time: never a folder, a link or a file it did not name', () => {
    dir = mkdtempSync(join(tmpdir(), 'rasmon-koffi-runtime-'));
    const runtime = join(dir, 'runtime');
    const outside = join(dir, 'outside');
    mkdirSync(runtime);
    mkdirSync(outside);
    const victim = join(outside, 'koffi-1-0123456789abcdef.node');
    writeFileSync(victim, 'not ours');
    writeFileSync(join(outside, 'precious'), 'not ours either');

    const stale = ['koffi-4242-0123456789abcdef.node', 'koffi-7-fedcba9876543210.node'];
    for (const name of stale) writeFileSync(join(runtime, name), 'stale');
    // Named like a copy but a folder (with something in it), a link to a folder, a link to a file.
    mkdirSync(join(runtime, 'koffi-1-aaaaaaaaaaaaaaaa.node'));
    writeFileSync(join(runtime, 'koffi-1-aaaaaaaaaaaaaaaa.node', 'inside'), 'kept');
    symlinkSync(outside, join(runtime, 'koffi-2-bbbbbbbbbbbbbbbb.node'));
    symlinkSync(victim, join(runtime, 'koffi-3-cccccccccccccccc.node'));
    // Not named as the loader names its copies (the old prefix among them).
    const others = ['koffi.node', 'rasmon-agent-koffi-abc', 'koffi-1-0123.node', 'koffi-1-0123456789abcdef.node.bak'];
    for (const name of others) writeFileSync(join(runtime, name), 'other');

    expect(removeStaleKoffiCopies(runtime)).toBe(2);
    for (const name of stale) expect(existsSync(join(runtime, name)), name).toBe(false);
    for (const name of others) expect(existsSync(join(runtime, name)), name).toBe(true);
    expect(existsSync(join(runtime, 'koffi-1-aaaaaaaaaaaaaaaa.node', 'inside'))).toBe(true);
    expect(existsSync(join(runtime, 'koffi-2-bbbbbbbbbbbbbbbb.node'))).toBe(true);
    expect(existsSync(victim)).toBe(true);
    expect(existsSync(join(outside, 'precious'))).toBe(true);
  });

  it('does nothing in a folder that does not exist', () => {
    expect(removeStaleKoffiCopies(join(tmpdir(), 'rasmon-no-such-runtime-folder', 'runtime'))).toBe(0);
  });
});
