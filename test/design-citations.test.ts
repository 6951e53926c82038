/**
 * docs/design.md is the one place code, rules and dashboards cite: every "§N" names one of its
 * numbered sections, every "rule N" one of the numbered rules of its §2 (in a file that says which
 * design it cites), and nothing reads a design outside the repository.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../', import.meta.url);
const DESIGN = readFileSync(new URL('docs/design.md', ROOT), 'utf8');
const CITING = /\.(ts|lua|ya?ml|json|js|html)$/;
/** What .gitignore leaves out, and hidden folders. */
const NOT_SOURCE = new Set(['node_modules', 'dist', 'coverage', '.tmp']);

/** The repository's source, rule and dashboard files, relative to its root. */
function sourceFiles(dir = ''): string[] {
  return readdirSync(new URL(dir || '.', ROOT), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory())
      return NOT_SOURCE.has(entry.name) || entry.name.startsWith('.') ? [] : sourceFiles(`${path}/`);
    return entry.isFile() && CITING.test(entry.name) && entry.name !== 'package-lock.json' ? [path] : [];
  });
}

const sections = new Set([...DESIGN.matchAll(/^## (\d+)\. /gm)].map((match) => Number(match[1])));
const rulesPart = DESIGN.slice(DESIGN.indexOf('### The rules rasmon applies'), DESIGN.indexOf('## 3. '));
const rules = new Set([...rulesPart.matchAll(/^(\d+)\. \*\*/gm)].map((match) => Number(match[1])));

/** What is wrong with the citations of one file's text; empty when each resolves. */
function problems(path: string, text: string): string[] {
  const found: string[] = [];
  const line = (index: number) => text.slice(0, index).split('\n').length;
  if (/\bDESIGN\b/.test(text)) found.push(`${path}: cites "DESIGN" (cite docs/design.md)`);
  if (text.includes('../shared')) found.push(`${path}: reads ../shared`);
  // "RFC 6455 §7" and the like cite another document.
  for (const match of text.matchAll(/(\S+) §(\d+)/g)) {
    if (/^\d+$/.test(match[1]!) || match[1]!.startsWith('RFC')) continue;
    if (!sections.has(Number(match[2])))
      found.push(`${path}:${line(match.index)}: §${match[2]} is not a section of docs/design.md`);
  }
  for (const match of text.matchAll(/\b[Rr]ules? (\d+)(?:(?:-| and | to )(\d+))?/g)) {
    for (const number of [match[1], match[2]]) {
      if (number !== undefined && !rules.has(Number(number)))
        found.push(`${path}:${line(match.index)}: rule ${number} is not a rule of docs/design.md §2`);
    }
    const sectionNamed = text.slice(Math.max(0, match.index - 3), match.index) === '§2 ';
    if (!sectionNamed && !text.includes('docs/design.md §2'))
      found.push(`${path}:${line(match.index)}: "${match[0]}" without saying it is docs/design.md §2's`);
  }
  return found;
}

describe('citations of docs/design.md', () => {
  it('the design has its numbered sections and rules', () => {
    expect([...sections]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...rules]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('finds a citation that does not resolve', () => {
    expect(problems('a.ts', '// see DESIGN §3')).toEqual(['a.ts: cites "DESIGN" (cite docs/design.md)']);
    expect(problems('a.ts', '// docs/design.md §9')).toEqual(['a.ts:1: §9 is not a section of docs/design.md']);
    expect(problems('a.ts', '// docs/design.md §2 rule 12')).toEqual([
      'a.ts:1: rule 12 is not a rule of docs/design.md §2',
    ]);
    expect(problems('a.lua', '-- (rule 10)')).toEqual(['a.lua:1: "rule 10" without saying it is docs/design.md §2\'s']);
    expect(problems('a.ts', "readFileSync('../shared/x.md')")).toEqual(['a.ts: reads ../shared']);
    expect(problems('a.ts', '// RFC 6455 §7; docs/design.md §2 rules 7 and 8, rule 10')).toEqual([]);
    expect(problems('a.ts', '// docs/design.md §3 and §2 rule 10')).toEqual([]);
  });

  it('every file of the repository cites sections and rules that exist', () => {
    const files = sourceFiles();
    expect(files.length).toBeGreaterThan(50);
    const found = files.flatMap((path) =>
      path === 'test/design-citations.test.ts' ? [] : problems(path, readFileSync(new URL(path, ROOT), 'utf8')),
    );
    expect(found).toEqual([]);
  });
});
