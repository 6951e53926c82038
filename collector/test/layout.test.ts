/**
 * The layout of collector/src (its README.md): the table of folders there is the statement, and this
 * holds two things to it: the lint rule (eslint.config.js, collectorLayer) refuses exactly the imports
 * the table forbids, and the actual import graph of the sources obeys the table and has no cycle.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint, Linter } from 'eslint';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'collector/src');

/** The README's table: each folder and the folders it may import. */
function layerTable(): Map<string, string[]> {
  const table = new Map<string, string[]>();
  for (const line of readFileSync(join(SRC, 'README.md'), 'utf8').split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const folder = /^`([a-z]+)\/`$/.exec(cells[1] ?? '')?.[1];
    if (!folder) continue;
    const below = [...(cells[3] ?? '').matchAll(/`([a-z]+)\/`/g)].map((match) => match[1]!);
    table.set(folder, below);
  }
  return table;
}

const LAYERS = layerTable();

function folders(): string[] {
  return readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory());
}

/** Every .ts module under collector/src, by its path relative to it. */
function modules(dir = SRC): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return modules(path);
    return path.endsWith('.ts') ? [relative(SRC, path)] : [];
  });
}

/** Module → the modules of collector/src it imports (static, dynamic and type-only imports alike). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const module of modules()) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(SRC, module), 'utf8'), true, true);
    const targets = importedFiles
      .map((file) => file.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative(SRC, resolve(SRC, dirname(module), name)).replace(/\.js$/, '.ts'));
    graph.set(module, targets);
  }
  return graph;
}

/** A cycle of the graph as the path that closes it (first node repeated at the end), if there is one. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    const at = path.indexOf(node);
    if (at >= 0) return [...path.slice(at), node];
    if (done.has(node)) return undefined;
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    done.add(node);
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

function folderOf(module: string): string | undefined {
  const parts = module.split('/');
  return parts.length > 1 ? parts[0] : undefined;
}

/**
 * The project's ESLint configuration with only its import rule, parsed without type information: the
 * layer rule needs none, and a typed parse would read the packages' built declarations, which another
 * test file's build (the exe's `tsc -b`) may be rewriting at that moment.
 */
function importRulesOnly(): ESLint {
  return new ESLint({
    cwd: ROOT,
    ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
    overrideConfig: { languageOptions: { parserOptions: { project: false, projectService: false } } },
  });
}

describe('collector/src layout', () => {
  it('the README names every folder, and each only with folders it names', () => {
    expect([...LAYERS.keys()].sort()).toEqual(folders().sort());
    for (const below of LAYERS.values()) for (const folder of below) expect(LAYERS.has(folder)).toBe(true);
  });

  it('the lint rule refuses exactly the imports the table forbids', async () => {
    const eslint = new ESLint({ cwd: ROOT });
    const linter = new Linter({ configType: 'flat' });
    const refused = async (from: string, specifier: string): Promise<boolean> => {
      const filename = join(SRC, from, 'probe.ts');
      const config = (await eslint.calculateConfigForFile(filename)) as { rules: Linter.RulesRecord };
      const rule = config.rules['no-restricted-imports'];
      if (rule === undefined) return false;
      const code = `import { probe } from '${specifier}';\nexport { probe };\n`;
      const messages = linter.verify(code, [{ files: ['**/*.ts'], rules: { 'no-restricted-imports': rule } }], {
        filename,
      });
      expect(messages.filter((message) => message.ruleId !== 'no-restricted-imports')).toEqual([]);
      return messages.length > 0;
    };
    for (const [folder, below] of LAYERS) {
      expect(await refused(folder, './x.js'), `${folder}/ importing its own folder`).toBe(false);
      expect(await refused(folder, '../logger.js'), `${folder}/ importing the top level`).toBe(true);
      expect(await refused(folder, '../../protocol/x.js'), `${folder}/ importing out of collector/src`).toBe(true);
      for (const other of LAYERS.keys()) {
        if (other === folder) continue;
        expect(await refused(folder, `../${other}/x.js`), `${folder}/ importing ${other}/`).toBe(
          !below.includes(other),
        );
      }
    }
    for (const folder of LAYERS.keys()) {
      expect(await refused('.', `./${folder}/x.js`), `the top level importing ${folder}/`).toBe(false);
    }
  });

  it('ESLint fails a module of a lower layer that imports back up', async () => {
    const eslint = importRulesOnly();
    const filePath = join(SRC, 'engine/farm-clock.ts');
    const text = `${readFileSync(filePath, 'utf8')}\nexport type { AgentServer } from '../ingest/agent-server.js';\n`;
    const [result] = await eslint.lintText(text, { filePath });
    expect(result!.messages.filter((message) => message.fatal)).toEqual([]);
    const refusals = result!.messages.filter((message) => message.ruleId === 'no-restricted-imports');
    expect(refusals).toHaveLength(1);
    expect(refusals[0]!.message).toContain('collector/src/README.md');
    const [clean] = await eslint.lintText(readFileSync(filePath, 'utf8'), { filePath });
    expect(clean!.messages.filter((message) => message.ruleId === 'no-restricted-imports')).toEqual([]);
  }, 120_000);

  it('every import of the sources goes to its own folder or a layer below', () => {
    const graph = importGraph();
    expect(graph.size).toBeGreaterThan(30);
    const upward: string[] = [];
    for (const [module, targets] of graph) {
      const from = folderOf(module);
      if (from === undefined) continue;
      for (const target of targets) {
        const to = folderOf(target);
        if (to !== from && (to === undefined || !LAYERS.get(from)!.includes(to))) upward.push(`${module} → ${target}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('the import graph has no cycle', () => {
    const graph = importGraph();
    for (const [module, targets] of graph) {
      for (const target of targets) expect(graph.has(target), `${module} imports ${target}`).toBe(true);
    }
    expect([...graph.values()].flat().length).toBeGreaterThan(80);
    expect(findCycle(graph)).toBeUndefined();
  });

  it('the graph counts type-only and dynamic imports, and the search finds a cycle where there is one', () => {
    const source = "import type { A } from './a.js';\nexport type { B } from '../b/b.js';\nawait import('./c.js');\n";
    const names = ts.preProcessFile(source, true, true).importedFiles.map((file) => file.fileName);
    expect(names).toEqual(['./a.js', '../b/b.js', './c.js']);
    expect(
      findCycle(
        new Map([
          ['a', ['b']],
          ['b', ['c']],
          ['c', ['a']],
        ]),
      ),
    ).toEqual(['a', 'b', 'c', 'a']);
    expect(
      findCycle(
        new Map([
          ['a', ['b', 'c']],
          ['b', ['c']],
          ['c', []],
        ]),
      ),
    ).toBeUndefined();
  });
});
