/**
 * The Lua scripts' contracts as written in their headers, against the argument builders; and the
 * include loader, which must fail loudly on a missing or self-including include.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { FarmRules } from '../src/config/farm-directory.js';
import { ScriptError } from '../src/engine/errors.js';
import { RedisKeys, farmKeyList, hostKeyList } from '../src/engine/redis-schema.js';
import {
  SCRIPT_NAMES,
  packEvents,
  packSnapshot,
  packedSnapshot,
  scriptCalls,
  type ScriptCall,
  type ScriptName,
} from '../src/engine/script-args.js';
import { scriptSource } from '../src/engine/scripts.js';

const LUA_DIR = fileURLToPath(new URL('../src/engine/lua/', import.meta.url));
const header = (file: string) => /^--\[\[([\s\S]*?)\]\]/.exec(readFileSync(join(LUA_DIR, file), 'utf8'))![1]!;

/** The numbered names of a header's ARGV section (`   4 epoch   …`). */
function argNames(text: string): Array<[number, string]> {
  const section = text.slice(text.indexOf('ARGV'));
  const end = section.search(/^\s*(Output|Reads)/m);
  return [...(end < 0 ? section : section.slice(0, end)).matchAll(/^\s+(\d+) (\w+)\b/gm)].map((m) => [
    Number(m[1]),
    m[2]!,
  ]);
}

/**
 * How many keys a header says the script takes, from the key groups it names; any other name is one
 * key of the script's own, which the header describes on a line of its own as `name  KEYS[n], ...`.
 */
function keyCount(text: string, groups: { farm: number; host: number }): number {
  const line = /^\s*KEYS: (.+)$/m.exec(text)![1]!;
  return line.split(',').reduce((sum, raw) => {
    const group = raw.trim();
    if (group === 'farm' || group === 'host') return sum + groups[group];
    if (!new RegExp(`^\\s*${group}\\s+KEYS\\[\\d+\\]`, 'm').test(text))
      throw new Error(`no line describes key ${group}`);
    return sum + 1;
  }, 0);
}

const keys = new RedisKeys('t');
const rules: FarmRules = {
  id: 'farm-a',
  seats: 10,
  countDisconnected: false,
  overuseGraceStartedAt: 1_700_000_000_000,
};
const who = { host: 'rdsh-1', owner: 'c:1', stream: 's', epoch: 'e' };
const session = {
  id: '1',
  user: 'corp\\a',
  admin: false,
  kind: 'desktop',
  via: 'ras',
  state: 'active',
  since: 5,
  client: { name: 'pc' },
} as const;

const calls: Record<ScriptName, ScriptCall> = {
  applyFrame: scriptCalls.applyFrame(
    keys,
    rules,
    who,
    { leaseMs: 45_000, maxSessions: 2000, farmMaxSessions: 1000, maxNewUsersPerMinute: 500 },
    { type: 'events', events: [] },
  ),
  beginSnapshot: scriptCalls.beginSnapshot(
    keys,
    rules,
    who,
    { leaseMs: 45_000, maxSessions: 2000, farmMaxSessions: 1000, maxNewUsersPerMinute: 500 },
    7,
    packedSnapshot([session]),
  ),
  snapshotSlice: scriptCalls.snapshotSlice(keys, rules, who, 45_000, {
    seq: 7,
    part: 'ends',
    items: '["1"]',
    correcting: false,
    last: true,
    accepted: true,
  }),
  hello: scriptCalls.hello(
    keys,
    rules,
    who,
    'rasmon-agent/1',
    45_000,
    { maxHosts: 5000, maxKnownHosts: 10_000 },
    { mode: 'key', keyHash: 'ab'.repeat(32) },
  ),
  renewLease: scriptCalls.renewLease(keys, rules, who, 45_000),
  release: scriptCalls.release(keys, rules, who),
  maintainHost: scriptCalls.maintainHost(keys, rules, 'rdsh-1', 86_400_000),
  tick: scriptCalls.tick(keys, rules, 'fresh', 86_400_000, 30 * 86_400_000),
  forgetHost: scriptCalls.forgetHost(keys, rules, 'rdsh-1', 30 * 86_400_000),
  reportStatus: scriptCalls.reportStatus(keys, rules, who, {
    type: 'status',
    source: 'wts',
    ok: false,
    error: 'x',
    lastListAt: 5,
  }),
  openDay: scriptCalls.openDay(keys, rules, 1_700_000_000_000),
};

describe('script arguments', () => {
  const include = header('includes/keys.lua');
  const ruleNames = argNames(include);
  const groups = {
    farm: Number(/farm keys, in every script: KEYS\[1\.\.(\d+)\]/.exec(include)![1]),
    host: (([, a, b]) => Number(b) - Number(a) + 1)(/host keys, [^:]*: KEYS\[(\d+)\.\.(\d+)\]/.exec(include)!),
  };

  it('the include names the farm rules at ARGV 1-3 and the key groups the key lists build', () => {
    expect(ruleNames).toEqual([
      [1, 'seats'],
      [2, 'countDisconnected'],
      [3, 'graceSeed'],
    ]);
    expect(groups).toEqual({ farm: farmKeyList(keys.farm('x')).length, host: hostKeyList(keys.host('x', 'y')).length });
  });

  it.each(SCRIPT_NAMES)('%s: the builder gives the keys and arguments its header lists, in that order', (name) => {
    const text = header(`${name}.lua`);
    const own = argNames(text);
    expect(own.length).toBeGreaterThan(0);
    expect(own.map(([n]) => n)).toEqual(own.map((_, i) => i + 1 + ruleNames.length));
    const call = calls[name];
    expect(call.script).toBe(name);
    expect(call.args.map(([argName]) => argName)).toEqual([...ruleNames, ...own].map(([, argName]) => argName));
    expect(call.keys).toHaveLength(keyCount(text, groups));
    expect(call.keys.every((key) => key.startsWith('t:{farm-a}:'))).toBe(true);
  });

  it('gives the farm rules as the scripts read them', () => {
    expect(calls.tick.args.slice(0, 3)).toEqual([
      ['seats', 10],
      ['countDisconnected', '0'],
      ['graceSeed', '1700000000000'],
    ]);
    const open = scriptCalls.tick(keys, { id: 'farm-a', seats: 3, countDisconnected: true }, 'fresh', 1, 1);
    expect(open.args.slice(0, 3)).toEqual([
      ['seats', 3],
      ['countDisconnected', '1'],
      ['graceSeed', ''],
    ]);
  });

  it('packs the items flat, each session once as its canonical JSON and once as the fields the index reads', () => {
    const item = { seq: 3, at: 1, op: 'upsert', session } as const;
    const fields = ['1', 'corp\\a', false, 'desktop', 'ras', 'active', 5];
    expect(
      JSON.parse(packEvents([item, { seq: 4, at: 1, op: 'end', id: '1' }, { seq: 5, at: 1, op: 'invalid' } as never])),
    ).toEqual([3, 'u', JSON.stringify(session), ...fields, 4, 'e', '1', 5, 'x']);
    expect(JSON.parse(packSnapshot([session, { ...session, id: '2' }]))).toEqual([
      JSON.stringify(session),
      ...fields,
      JSON.stringify({ ...session, id: '2' }),
      '2',
      ...fields.slice(1),
    ]);
  });
});

describe('the include loader', () => {
  function luaDir(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), 'rasmon-lua-')) + '/';
    mkdirSync(join(dir, 'includes'));
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
    return dir;
  }

  it('resolves includes, also nested ones, into the script', () => {
    const dir = luaDir({
      'main.lua': 'local a = 1\n--- @include "outer"\nreturn a\n',
      'includes/outer.lua': '--- @include "inner"\nlocal b = 2',
      'includes/inner.lua': 'local c = 3',
    });
    expect(scriptSource('main', dir)).toBe('local a = 1\nlocal c = 3\nlocal b = 2\nreturn a\n');
  });

  it('brings each include in once, where it is first included', () => {
    const dir = luaDir({
      'main.lua': '--- @include "a"\n--- @include "b"\n--- @include "base"\nreturn 1\n',
      'includes/a.lua': '--- @include "base"\nlocal a = base',
      'includes/b.lua': '--- @include "base"\nlocal b = base',
      'includes/base.lua': 'local base = 0',
    });
    expect(scriptSource('main', dir)).toBe('local base = 0\nlocal a = base\n\nlocal b = base\n\nreturn 1\n');
  });

  it('fails naming the file when an include is missing', () => {
    const dir = luaDir({ 'main.lua': '--- @include "nowhere"\n' });
    expect(() => scriptSource('main', dir)).toThrow(ScriptError);
    expect(() => scriptSource('main', dir)).toThrow(/includes\/nowhere\.lua cannot be read/);
  });

  it('fails on an include that includes itself, directly or through another', () => {
    const self = luaDir({ 'main.lua': '--- @include "loop"\n', 'includes/loop.lua': '--- @include "loop"\n' });
    expect(() => scriptSource('main', self)).toThrow(
      /include cycle: main\.lua → includes\/loop\.lua → includes\/loop\.lua/,
    );
    const pair = luaDir({
      'main.lua': '--- @include "a"\n',
      'includes/a.lua': '--- @include "b"\n',
      'includes/b.lua': '--- @include "a"\n',
    });
    expect(() => scriptSource('main', pair)).toThrow(/include cycle: .*a\.lua → includes\/b\.lua → includes\/a\.lua/);
  });

  it('every shipped script loads', () => {
    for (const name of SCRIPT_NAMES) expect(scriptSource(name)).not.toMatch(/@include/);
  });
});
