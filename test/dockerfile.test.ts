/**
 * The Dockerfile can build: every COPY from the build context names a path that exists and that
 * .dockerignore leaves in the context (a COPY of a missing path fails the build), every COPY from a
 * stage names one built before it, and the commands the image and docker-compose.yml run are bins of
 * packages the image holds. What the final stage lays out is started in test/image-content.test.ts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, copies, dockerIgnores, readDockerfile } from './support/dockerfile.js';
import { compose } from './support/compose.js';

const stages = readDockerfile();
const ignored = dockerIgnores();

/** The files under a context path that reach the build context. */
function contextFiles(path: string): string[] {
  const full = join(ROOT, path);
  if (!statSync(full).isDirectory()) return ignored(path) ? [] : [path];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)))
    .filter((file) => !ignored(file));
}

describe('Dockerfile', () => {
  it('reads .dockerignore as Docker does', () => {
    // Checks of the matcher itself, so that a pass below means something.
    expect(ignored('node_modules/ws/index.js')).toBe(true);
    expect(ignored('collector/node_modules/x/y.js')).toBe(true);
    expect(ignored('collector/dist/cli.js')).toBe(true);
    expect(ignored('protocol/tsconfig.tsbuildinfo')).toBe(true);
    expect(ignored('collector/src/engine/lua/frame.lua')).toBe(false);
    expect(ignored('collector/static/app.js')).toBe(false);
  });

  it('copies from the build context only paths that exist and are not ignored', () => {
    const problems: string[] = [];
    for (const stage of stages) {
      for (const copy of copies(stage).filter((c) => c.from === undefined)) {
        for (const source of copy.sources) {
          if (/[*?[]/.test(source)) problems.push(`line ${copy.line}: ${source} is a wildcard; name the path`);
          else if (!existsSync(join(ROOT, source))) problems.push(`line ${copy.line}: ${source} does not exist`);
          else if (ignored(source)) problems.push(`line ${copy.line}: ${source} is excluded by .dockerignore`);
          else if (contextFiles(source).length === 0)
            problems.push(`line ${copy.line}: nothing under ${source} reaches the build context`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('copies from a stage only what an earlier stage builds', () => {
    const problems: string[] = [];
    stages.forEach((stage, index) => {
      for (const copy of copies(stage).filter((c) => c.from !== undefined)) {
        const source = stages.slice(0, index).find((earlier) => earlier.name === copy.from);
        if (!source) {
          problems.push(`line ${copy.line}: --from=${copy.from} is not an earlier stage`);
          continue;
        }
        const workdir = source.instructions.findLast((i) => i.keyword === 'WORKDIR')?.args ?? '/';
        const builds = source.instructions.some((i) => i.keyword === 'RUN' && /\btsc -b\b/.test(i.args));
        for (const path of copy.sources) {
          // `/app/<package>/dist` exists in the build stage when it copied the package and ran tsc -b.
          const inside = relative(workdir, path);
          const match = /^([^/]+)\/dist$/.exec(inside);
          const copied = copies(source).some((c) => c.from === undefined && c.sources.includes(match?.[1] ?? ''));
          if (!match || !builds || !copied || !existsSync(join(ROOT, match[1]!, 'tsconfig.json')))
            problems.push(`line ${copy.line}: ${path} is not a package output the ${copy.from} stage builds`);
        }
      }
    });
    expect(problems).toEqual([]);
  });

  it('holds, in its final stage, the bins that the image and docker-compose.yml run', () => {
    const final = stages.at(-1)!;
    const copied = copies(final).flatMap((copy) => copy.sources.map((source) => ({ ...copy, source })));
    const cmd = final.instructions.findLast((i) => i.keyword === 'CMD')!;
    const programs = new Set<string>([(JSON.parse(cmd.args) as string[])[0]!]);
    for (const service of Object.values(compose.services)) {
      const program = service.command?.[0];
      if (program?.startsWith('rasmon-')) programs.add(program);
    }
    expect([...programs].sort()).toEqual(['rasmon-agent', 'rasmon-collector']);
    for (const program of programs) {
      const pkg = ['collector', 'agent'].find((dir) => {
        const json = JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as {
          bin?: Record<string, string>;
        };
        return json.bin?.[program] !== undefined;
      });
      expect(pkg, `${program} is the bin of a package`).toBeDefined();
      expect(copied.some((c) => c.source === `${pkg}/bin` && c.from === undefined)).toBe(true);
      expect(copied.some((c) => c.source === `/app/${pkg}/dist`)).toBe(true);
      expect(copied.some((c) => c.source === `${pkg}/package.json`)).toBe(true);
    }
  });
});
