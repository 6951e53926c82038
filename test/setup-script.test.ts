/**
 * The README's two commands on a fresh machine: `npm run demo` and `npm test` run scripts/setup
 * first, which installs what is missing or says in one line what to install and how; .ci/run runs
 * the same test command. Checked here with a PATH that holds none of the suite's programs
 * (`--check` installs nothing).
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../', import.meta.url).pathname;

/**
 * The script in a checkout of its own whose Node.js dependencies are installed (node_modules newer
 * than the lock file), so what it asks for does not depend on the state of this checkout's install.
 */
const checkout = mkdtempSync(join(tmpdir(), 'rasmon-setup-checkout-'));
mkdirSync(join(checkout, 'scripts'));
mkdirSync(join(checkout, 'node_modules'));
copyFileSync(join(ROOT, 'scripts/setup'), join(checkout, 'scripts/setup'));
writeFileSync(join(checkout, 'package-lock.json'), '{}\n');
writeFileSync(join(checkout, 'node_modules/.package-lock.json'), '{}\n');
utimesSync(join(checkout, 'package-lock.json'), 1_000_000, 1_000_000);
const SETUP = join(checkout, 'scripts/setup');

/** A PATH with only what the script itself runs: a machine with Node.js and nothing of the suite's. */
const bare = mkdtempSync(join(tmpdir(), 'rasmon-setup-'));
for (const program of ['bash', 'node', 'npm', 'dirname', 'sed', 'id', 'env']) {
  const found = spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).stdout.trim();
  symlinkSync(found, join(bare, program));
}
afterAll(() => {
  rmSync(bare, { recursive: true, force: true });
  rmSync(checkout, { recursive: true, force: true });
});

function setup(args: string[], env: Record<string, string> = {}) {
  const clean = { ...process.env };
  delete clean.REDIS_URL;
  delete clean.CHROMIUM_PATH;
  return spawnSync(join(bare, 'bash'), [SETUP, ...args], {
    encoding: 'utf8',
    env: { ...clean, PATH: bare, ...env },
  });
}

describe('scripts/setup', () => {
  it('names in one line every package the suite needs and the command that installs them', () => {
    const run = setup(['--check', 'test']);
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const match = /^rasmon: npm test needs: sudo apt-get update && sudo apt-get install -y (.+)$/.exec(lines[0]!);
    expect(match, lines[0]).not.toBeNull();
    // chromium and wine64 are found by their file paths, which a PATH cannot hide.
    expect(match![1]!.split(' ')).toEqual(
      expect.arrayContaining([
        'redis-server',
        'prometheus',
        'prometheus-alertmanager',
        'docker-compose',
        'openssl',
        'wine',
        'faketime',
        'gcc',
        'wixl',
        'msitools',
        'osslsigncode',
        'gcc-mingw-w64-x86-64',
      ]),
    );
  });

  it('asks nothing of the demo when REDIS_URL names a Redis', () => {
    const run = setup(['--check', 'demo'], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('refuses an unknown argument in one line', () => {
    const run = setup(['tests']);
    expect(run.status).toBe(2);
    expect(run.stderr.trimEnd().split('\n')).toEqual([
      "scripts/setup: unknown argument 'tests' (use: scripts/setup [--check] demo|test)",
    ]);
  });

  it('runs before the demo and the suite, and CI runs the same test command', () => {
    const scripts = (
      JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    ).scripts;
    expect(scripts.demo).toMatch(/^bash scripts\/setup demo && /);
    expect(scripts.test).toMatch(/^bash scripts\/setup test && /);
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    expect(ci.split('\n')).toContain('npm test');
  });
});
