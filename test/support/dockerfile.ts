/**
 * The Dockerfile and .dockerignore as Docker reads them, far enough for the tests that check the
 * image without a Docker engine: its stages, their COPY instructions, and which context paths
 * `.dockerignore` leaves out of the build context.
 * https://docs.docker.com/reference/dockerfile/#copy, https://docs.docker.com/build/concepts/context/#dockerignore-files
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Instruction {
  keyword: string;
  /** The arguments as written, continuation lines joined. */
  args: string;
  line: number;
}

export interface Copy {
  /** The stage a `--from=` names, else undefined: the build context. */
  from: string | undefined;
  sources: string[];
  destination: string;
  line: number;
}

export interface Stage {
  name: string | undefined;
  instructions: Instruction[];
}

/** The instructions of a Dockerfile, grouped by stage (one per FROM). */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const start = i;
    let logical = lines[i]!;
    while (logical.endsWith('\\') && i + 1 < lines.length) {
      i += 1;
      logical = `${logical.slice(0, -1)} ${lines[i]!.trim().startsWith('#') ? '' : lines[i]!}`;
    }
    const trimmed = logical.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const match = /^(\S+)\s*(.*)$/s.exec(trimmed)!;
    const instruction = { keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start + 1 };
    if (instruction.keyword === 'FROM') {
      const as = /\s+AS\s+(\S+)$/i.exec(instruction.args);
      stages.push({ name: as?.[1], instructions: [] });
    }
    if (stages.length === 0) throw new Error(`Dockerfile line ${start + 1}: ${instruction.keyword} before FROM`);
    stages.at(-1)!.instructions.push(instruction);
  }
  return stages;
}

/** The COPY instructions of a stage (shell form; the JSON form is not used here and is refused). */
export function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((instruction) => instruction.keyword === 'COPY')
    .map((instruction) => {
      if (instruction.args.startsWith('['))
        throw new Error(`Dockerfile line ${instruction.line}: JSON-form COPY is not read by this test`);
      const words = instruction.args.split(/\s+/);
      const flags = words.filter((word) => word.startsWith('--'));
      const paths = words.filter((word) => !word.startsWith('--'));
      const from = flags.find((flag) => flag.startsWith('--from='))?.slice('--from='.length);
      if (paths.length < 2)
        throw new Error(`Dockerfile line ${instruction.line}: COPY needs a source and a destination`);
      return { from, sources: paths.slice(0, -1), destination: paths.at(-1)!, line: instruction.line };
    });
}

export function readDockerfile(): Stage[] {
  return parseDockerfile(readFileSync(`${ROOT}Dockerfile`, 'utf8'));
}

/** A regular expression for one .dockerignore pattern (Go's filepath.Match with `**`), anchored at the context root. */
function patternRegExp(pattern: string): RegExp {
  let source = '';
  const clean = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
  for (let i = 0; i < clean.length; i += 1) {
    const char = clean[i]!;
    if (char === '*' && clean[i + 1] === '*') {
      // `**/` matches any number of folders, none included.
      if (clean[i + 2] === '/') {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // A pattern that names a folder leaves out everything under it too.
  return new RegExp(`^${source}(?:/.*)?$`);
}

/** Whether .dockerignore leaves a context path (relative, `/`-separated) out of the build context. */
export function dockerIgnores(): (path: string) => boolean {
  const rules = readFileSync(`${ROOT}.dockerignore`, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) =>
      line.startsWith('!')
        ? { include: true, pattern: patternRegExp(line.slice(1)) }
        : { include: false, pattern: patternRegExp(line) },
    );
  return (path) => {
    let ignored = false;
    // The last pattern that matches decides, as in Docker.
    for (const rule of rules) if (rule.pattern.test(path)) ignored = !rule.include;
    return ignored;
  };
}
