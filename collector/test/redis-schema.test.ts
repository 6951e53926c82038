/**
 * The Lua scripts spell the names of the Redis state themselves (Lua has no import); this holds every
 * name they use to redis-schema.ts: the key tables, the meta fields and every field of the farm
 * record they touch, the host state fields, the day record's order, the labels' parts and the
 * sources' JSON fields. A field renamed on one side only fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONNECTION_LABEL_KEYS } from '@rasmon/protocol';
import { describe, expect, it } from 'vitest';
import {
  DAY_RECORD_FIELDS,
  FARM_KEY_NAMES,
  HOST_KEY_NAMES,
  HOST_STATE_FIELDS,
  LABEL_PARTS,
  META_FIELDS,
  SOURCE_STATUS_FIELDS,
  splitDayRecord,
} from '../src/engine/redis-schema.js';
import { SCRIPT_NAMES } from '../src/engine/script-args.js';

const LUA_DIR = fileURLToPath(new URL('../src/engine/lua/', import.meta.url));
const include = (name: string) => readFileSync(join(LUA_DIR, 'includes', `${name}.lua`), 'utf8');
/** Every Lua file, comments stripped: the scripts and their includes. */
const LUA: Record<string, string> = Object.fromEntries(
  [
    ...SCRIPT_NAMES.map((name) => `${name}.lua`),
    ...readdirSync(join(LUA_DIR, 'includes')).map((file) => `includes/${file}`),
  ].map((file) => [file, stripComments(readFileSync(join(LUA_DIR, file), 'utf8'))]),
);

function stripComments(lua: string): string {
  return lua.replace(/--\[\[[\s\S]*?\]\]/g, '').replace(/--.*$/gm, '');
}

/** The body of `local NAME = { ... }` (no nested braces). */
function table(source: string, name: string): string {
  const match = new RegExp(`local ${name} = \\{([^}]*)\\}`).exec(source);
  if (!match) throw new Error(`no table ${name}`);
  return match[1]!;
}

const strings = (text: string) => [...text.matchAll(/'([^']*)'/g)].map((m) => m[1]!);

/** Every `rcall(...)` of the Lua sources, its arguments as written (parentheses balanced, strings skipped). */
function redisCalls(source: string): string[] {
  const calls: string[] = [];
  for (let at = source.indexOf('rcall('); at >= 0; at = source.indexOf('rcall(', at + 1)) {
    let depth = 0;
    let quote: string | undefined;
    for (let i = at + 'rcall'.length; i < source.length; i += 1) {
      const char = source[i]!;
      if (quote) {
        if (char === quote) quote = undefined;
      } else if (char === "'" || char === '"') quote = char;
      else if (char === '(') depth += 1;
      else if (char === ')' && --depth === 0) {
        calls.push(source.slice(at + 'rcall('.length, i));
        break;
      }
    }
  }
  return calls;
}

/** The identifier-like string literals of the Redis calls on a key of the Lua key tables. */
function fieldsOn(key: string): Set<string> {
  const fields = new Set<string>();
  for (const source of Object.values(LUA)) {
    for (const call of redisCalls(source)) {
      const [, target] = /^'[A-Z]+',\s*([\w.]+)/.exec(call) ?? [];
      if (target !== key) continue;
      for (const literal of strings(call.slice(call.indexOf(key))))
        if (/^[a-zA-Z]\w*$/.test(literal)) fields.add(literal);
    }
  }
  return fields;
}

describe('the Lua names of the Redis state are those of redis-schema.ts', () => {
  it('the key tables F and H list the keys in the order the key lists give them', () => {
    const keys = stripComments(include('keys'));
    const entries = (name: string) =>
      [...table(keys, name).matchAll(/(\w+) = KEYS\[(\d+)\]/g)].map((m) => [m[1]!, Number(m[2])] as const);
    expect(entries('F')).toEqual(FARM_KEY_NAMES.map((name, index) => [name, index + 1]));
    expect(entries('H')).toEqual(HOST_KEY_NAMES.map((name, index) => [name, FARM_KEY_NAMES.length + index + 1]));
    for (const [file, source] of Object.entries(LUA)) {
      for (const [, group, name] of source.matchAll(/\b([FH])\.(\w+)/g)) {
        const names: readonly string[] = group === 'F' ? FARM_KEY_NAMES : HOST_KEY_NAMES;
        expect(names, `${file} uses ${group}.${name}`).toContain(name);
      }
    }
  });

  it('the meta fields: the list the scripts load and save, and every field of the farm record they touch', () => {
    expect(strings(table(stripComments(include('meta')), 'META_FIELDS'))).toEqual([...META_FIELDS]);
    const touched = new Set<string>();
    for (const source of Object.values(LUA)) {
      for (const [, name] of source.matchAll(/\b(?:farm|loaded|meta)\.(\w+)/g)) touched.add(name!);
    }
    expect(touched.size).toBeGreaterThan(15);
    for (const name of touched) expect(META_FIELDS, `farm.${name}`).toContain(name);
    for (const field of fieldsOn('F.meta')) expect(META_FIELDS, `a call on F.meta names ${field}`).toContain(field);
    expect(fieldsOn('F.meta')).toEqual(new Set(['version']));
  });

  it('the host state fields: what loadHost reads, and every field any script reads or writes', () => {
    const loadHost = /local function loadHost[\s\S]*?\nend/.exec(LUA['includes/hosts.lua']!)![0];
    const read = redisCalls(loadHost).find((call) => call.startsWith("'HMGET', H.host"))!;
    expect(strings(read).slice(1)).toEqual([...HOST_STATE_FIELDS]);
    const used = fieldsOn('H.host');
    expect(used).toEqual(new Set(HOST_STATE_FIELDS));
  });

  it('the day record: its fields in the order the peaks hash holds them', () => {
    expect(strings(table(stripComments(include('day-record')), 'DAY_RECORD_FIELDS'))).toEqual([...DAY_RECORD_FIELDS]);
    const values = table(stripComments(include('day-record')), 'values');
    expect([...values.matchAll(/(\w+) = /g)].map((m) => m[1]).sort()).toEqual([...DAY_RECORD_FIELDS].sort());
    expect(splitDayRecord('12,1793000000000,10,2,5,90000')).toEqual({
      peakUsers: '12',
      peakAtMs: '1793000000000',
      seats: '10',
      maxOveruse: '2',
      admissions: '5',
      msOverSeats: '90000',
    });
    expect(splitDayRecord('7')).toEqual({ peakUsers: '7' });
  });

  it("the labels' parts, in the order labelOf joins them and the protocol's label keys list them", () => {
    const labelOf = /local function labelOf[\s\S]*?\nend/.exec(LUA['includes/connections.lua']!)![0];
    expect([...labelOf.matchAll(/rec\.(\w+)/g)].map((m) => m[1])).toEqual([...LABEL_PARTS]);
    expect(CONNECTION_LABEL_KEYS).toContain('desktop|ras|true|active');
    for (const key of CONNECTION_LABEL_KEYS) {
      const [kind, via, admin, state] = key.split('|');
      expect(['desktop', 'app']).toContain(kind);
      expect(['ras', 'rdp']).toContain(via);
      expect(['true', 'false']).toContain(admin);
      expect(['active', 'disconnected']).toContain(state);
    }
  });

  it("the sources' JSON: the fields reportStatus compares", () => {
    const compared = new Set([...LUA['reportStatus.lua']!.matchAll(/\b(?:old|new)\.(\w+)/g)].map((m) => m[1]!));
    expect(compared).toEqual(new Set(['source', 'ok', 'error']));
    for (const field of compared) expect(SOURCE_STATUS_FIELDS).toContain(field);
  });
});
