/**
 * Loads the Lua scripts of `lua/`: one file per atomic operation, `name.lua`, with
 * `--- @include "file"` lines resolved from `lua/includes/`. Each becomes an ioredis command
 * (EVALSHA with EVAL fallback) named `rasmon` + Name, called with its key count first, so the
 * count always follows the key list a builder of `script-args.ts` made.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Cluster, type Redis } from 'ioredis';
import { ScriptError } from './errors.js';
import { SCRIPT_NAMES, type ScriptCall, type ScriptName } from './script-args.js';

const LUA_DIR = fileURLToPath(new URL('../../src/engine/lua/', import.meta.url));
const INCLUDE = /^--- @include "([^"]*)"$/gm;

function readLua(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ScriptError(`Lua script ${path} cannot be read`, { cause: err });
  }
}

/**
 * The full source of a script, includes resolved: each included file may include others (what it
 * uses), and each comes in once, where it is first included, so that an include shared by two
 * others defines its locals once. A missing include, or one that includes itself through any
 * chain, throws naming the chain.
 */
export function scriptSource(name: string, dir: string = LUA_DIR): string {
  const included = new Set<string>();
  const expand = (source: string, chain: string[]): string =>
    source.replace(INCLUDE, (_, include: string) => {
      if (!/^[a-z][a-z0-9-]*$/.test(include))
        throw new ScriptError(`${chain.join(' → ')}: bad include name "${include}"`);
      const file = `includes/${include}.lua`;
      if (chain.includes(file)) throw new ScriptError(`Lua include cycle: ${[...chain, file].join(' → ')}`);
      if (included.has(file)) return '';
      included.add(file);
      return expand(readLua(dir + file), [...chain, file]);
    });
  const file = `${name}.lua`;
  return expand(readLua(dir + file), [file]);
}

function commandName(name: ScriptName): string {
  return `rasmon${name[0]!.toUpperCase()}${name.slice(1)}`;
}

/** Defines every script on a client. Throws at once when a file is missing. */
export function defineScripts(redis: Redis | Cluster): string[] {
  return SCRIPT_NAMES.map((name) => {
    const lua = scriptSource(name);
    redis.defineCommand(commandName(name), { lua });
    return lua;
  });
}

type ScriptCommand = (...args: Array<string | number | Buffer>) => Promise<unknown>;

/** Runs one script call on a client that `defineScripts` prepared. */
export function runScript(redis: Redis | Cluster, call: ScriptCall): Promise<unknown> {
  const command = (redis as unknown as Record<string, ScriptCommand>)[commandName(call.script)]!;
  return command.call(redis, call.keys.length, ...call.keys, ...call.args.map(([, value]) => value));
}

/**
 * Compiles every script on the server (SCRIPT LOAD), so a script that does not compile fails
 * start-up, and EVALSHA finds them after Redis restarted.
 */
export async function loadScripts(redis: Redis | Cluster, sources: readonly string[]): Promise<void> {
  for (const lua of sources) {
    try {
      const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
      await Promise.all(nodes.map((node) => node.script('LOAD', lua)));
    } catch (err) {
      throw new ScriptError(`Redis refused a rasmon Lua script: ${(err as Error).message}`, { cause: err });
    }
  }
}
