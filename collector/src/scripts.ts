/**
 * Loads the Lua scripts of `lua/`: one file per atomic operation, named `name-KEYCOUNT.lua`, with
 * `--- @include "file"` lines resolved from `lua/includes/`. Each becomes an ioredis command
 * (EVALSHA with EVAL fallback) named `rasmon` + Name.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Cluster, type Redis, type RedisKey, type Result } from 'ioredis';
import { ScriptError } from './errors.js';

type ScriptArg = RedisKey | number;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    rasmonApplyFrame(...args: ScriptArg[]): Result<unknown[], Context>;
    rasmonHello(...args: ScriptArg[]): Result<unknown[], Context>;
    rasmonRenewLease(...args: ScriptArg[]): Result<string, Context>;
    rasmonRelease(...args: ScriptArg[]): Result<string, Context>;
    rasmonMaintainHost(...args: ScriptArg[]): Result<number[], Context>;
    rasmonTick(...args: ScriptArg[]): Result<[string, string[]], Context>;
  }
}

/** The scripts and their key counts; the file of each is `${name}-${keys}.lua`. */
export const SCRIPTS = [
  { name: 'applyFrame', keys: 17 },
  { name: 'hello', keys: 17 },
  { name: 'renewLease', keys: 17 },
  { name: 'release', keys: 17 },
  { name: 'maintainHost', keys: 17 },
  { name: 'tick', keys: 14 },
] as const;

const LUA_DIR = fileURLToPath(new URL('../src/lua/', import.meta.url));
const INCLUDE = /^--- @include "([a-z-]+)"$/m;

function readLua(file: string): string {
  try {
    return readFileSync(LUA_DIR + file, 'utf8');
  } catch (err) {
    throw new ScriptError(`Lua script ${LUA_DIR + file} cannot be read`, { cause: err });
  }
}

/** The full source of a script, includes resolved. */
export function scriptSource(name: string, keys: number): string {
  let source = readLua(`${name}-${keys}.lua`);
  for (let match = INCLUDE.exec(source); match; match = INCLUDE.exec(source)) {
    source = source.replace(match[0], readLua(`includes/${match[1]}.lua`));
  }
  return source;
}

function commandName(name: string): string {
  return `rasmon${name[0]!.toUpperCase()}${name.slice(1)}`;
}

/** Defines every script on a client. Throws at once when a file is missing. */
export function defineScripts(redis: Redis | Cluster): string[] {
  const sources: string[] = [];
  for (const { name, keys } of SCRIPTS) {
    const lua = scriptSource(name, keys);
    redis.defineCommand(commandName(name), { numberOfKeys: keys, lua });
    sources.push(lua);
  }
  return sources;
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
