/**
 * What `rasmon-agent.exe` is made from, hashed: the build stamps the digest beside the exe, and the
 * tests rebuild when it no longer matches (a stale exe would test yesterday's code).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** The repository: the nearest folder up from here whose package.json declares the workspaces. */
function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && 'workspaces' in (JSON.parse(readFileSync(manifest, 'utf8')) as object)) return dir;
    if (dirname(dir) === dir) throw new Error(`no repository root above ${from}`);
  }
}

export const REPO_ROOT = findRepoRoot(import.meta.dirname);
export const EXE_PATH = join(REPO_ROOT, 'dist', 'rasmon-agent.exe');
export const EXE_STAMP_PATH = `${EXE_PATH}.json`;

export interface ExeStamp {
  inputs: string;
  sha256: string;
  bytes: number;
  node: string;
  koffi: string;
}

const INPUT_DIRS = ['agent/src', 'protocol/src', 'agent/build', 'agent/bin'];
const INPUT_FILES = ['agent/package.json', 'protocol/package.json', 'package-lock.json'];

function walk(dir: string, into: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, into);
    else if (entry.isFile()) into.push(path);
  }
}

/** sha256 over every input's path and content, in a fixed order. */
export function exeInputsDigest(root = REPO_ROOT): string {
  const files: string[] = [];
  for (const dir of INPUT_DIRS) if (existsSync(join(root, dir))) walk(join(root, dir), files);
  for (const file of INPUT_FILES) if (existsSync(join(root, file))) files.push(join(root, file));
  const hash = createHash('sha256');
  for (const file of files.map((f) => relative(root, f).split('\\').join('/')).sort()) {
    hash
      .update(`${file}\0`)
      .update(readFileSync(join(root, file)))
      .update('\0');
  }
  return hash.digest('hex');
}

/** The stamp of the exe in dist/, when the exe is there and was built from the current inputs. */
export function currentExeStamp(root = REPO_ROOT): ExeStamp | undefined {
  const exe = join(root, 'dist', 'rasmon-agent.exe');
  if (!existsSync(exe) || !existsSync(`${exe}.json`)) return undefined;
  const stamp = JSON.parse(readFileSync(`${exe}.json`, 'utf8')) as ExeStamp;
  if (stamp.inputs !== exeInputsDigest(root) || stamp.bytes !== statSync(exe).size) return undefined;
  return stamp;
}
