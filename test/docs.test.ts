/**
 * The README is for the first ten minutes: at most 20 KB, with an index that links every document of
 * docs/, and every relative link of the README, CHANGELOG.md and docs/ reaches a file and, with a
 * `#fragment`, a heading of it (as GitHub names heading anchors).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const DOCS = readdirSync(join(ROOT, 'docs'))
  .filter((name) => name.endsWith('.md'))
  .map((name) => `docs/${name}`);

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const outsideCode = markdown.replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...outsideCode.matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchor(match[1]!)));
}

/** The relative links of a markdown file: [text](target) not to a URL. */
function links(markdown: string): string[] {
  const outsideCode = markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
  return [...outsideCode.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1]!)
    .filter((target) => !/^[a-z]+:/.test(target));
}

describe('the README and docs/', () => {
  it('keeps the README within 20 KB', () => {
    expect(Buffer.byteLength(read('README.md'))).toBeLessThanOrEqual(20 * 1024);
  });

  it('links every document of docs/, and CHANGELOG.md, from the README', () => {
    const linked = new Set(links(read('README.md')).map((target) => target.split('#')[0]));
    expect(DOCS.length).toBeGreaterThanOrEqual(6);
    expect([...DOCS, 'CHANGELOG.md'].filter((doc) => !linked.has(doc))).toEqual([]);
  });

  it('has every relative link reach a file, and a heading of it', () => {
    const problems: string[] = [];
    for (const file of ['README.md', 'CHANGELOG.md', ...DOCS]) {
      const text = read(file);
      for (const target of links(text)) {
        const [path, fragment] = target.split('#');
        const into = path ? normalize(join(dirname(file), path)) : file;
        if (!existsSync(join(ROOT, into))) {
          problems.push(`${file}: ${target}: no ${into}`);
          continue;
        }
        if (fragment !== undefined && !anchors(read(into)).has(fragment))
          problems.push(`${file}: ${target}: no heading #${fragment} in ${into}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('keeps dated figures and renames out of the README', () => {
    const readme = read('README.md');
    expect(readme).not.toMatch(/Renamed from earlier builds/);
    expect(readme).not.toMatch(/^\| .*\d+ events\/s/m);
  });
});
