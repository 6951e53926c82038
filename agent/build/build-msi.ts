/**
 * `npm run build:agent-msi [-- --version X.Y.Z] [--out FILE] [--exe FILE]`: writes dist/rasmon-agent.msi, the
 * Windows Installer package of dist/rasmon-agent.exe (built first when missing or stale), and its
 * stamp (FILE.json: product code, upgrade code, what it was built from).
 *
 * On Linux, with Debian's packages: `wixl` (msitools' WiX-compatible compiler) compiles
 * msi/rasmon-agent.wxs; `gcc-mingw-w64-x86-64` compiles msi/agent-step.c, the custom action DLL that
 * runs the exe's setup step and puts its output into the MSI's log; `msibuild` (msitools) then sets
 * what wixl cannot write: the secure public properties and the hidden target of the action that
 * carries the token. `--version` gives the package another product version than package.json's
 * (a rebuild that must upgrade the one before it); `--out` writes it elsewhere; `--exe` packs another
 * build of the exe (a signed copy: `npm run sign:agent` does that).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SERVICE_DESCRIPTION } from '../src/windows/service-manager.js';
import { versionNumbers } from './exe-identity.js';
import { currentExeStamp, EXE_PATH, REPO_ROOT } from './exe-inputs.js';
import { MSI_PATH, MSI_PUBLIC_PROPERTIES, msiInputsDigest, UPGRADE_CODE, type MsiStamp } from './msi-layout.js';

const SOURCES = join(REPO_ROOT, 'agent', 'build', 'msi');

class BuildError extends Error {}

/** Each tool, and the Debian package that has it. */
const TOOLS = {
  wixl: 'wixl',
  msibuild: 'msitools',
  msiinfo: 'msitools',
  'x86_64-w64-mingw32-gcc': 'gcc-mingw-w64-x86-64',
} as const;

function requireTools(): void {
  const missing = Object.entries(TOOLS).filter(
    ([tool]) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0,
  );
  if (missing.length > 0) {
    throw new BuildError(
      `${missing.map(([tool]) => tool).join(', ')} not found: apt-get install ${[...new Set(missing.map(([, pkg]) => pkg))].join(' ')}`,
    );
  }
}

function run(program: string, args: string[], cwd = REPO_ROOT): string {
  const result = spawnSync(program, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new BuildError(`${program} ${args.join(' ')} failed (${result.status}):\n${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}

/** One SQL statement against the built package (msibuild -q). */
function sql(msi: string, query: string): void {
  run('msibuild', [msi, '-q', query]);
}

function main(): void {
  const { values } = parseArgs({
    options: { version: { type: 'string' }, out: { type: 'string' }, exe: { type: 'string' } },
    strict: true,
  });
  const out = values.out ? resolve(values.out) : MSI_PATH;
  const work = join(dirname(out), `${basename(out, '.msi')}-build`);
  requireTools();
  const agentPackage = JSON.parse(readFileSync(join(REPO_ROOT, 'agent', 'package.json'), 'utf8')) as {
    version: string;
    author: string;
  };
  const version = values.version ?? agentPackage.version;
  // Windows Installer compares the first three fields only: a fourth would not upgrade.
  const [major, minor, patch] = versionNumbers(version);
  if (major > 255 || minor > 255) throw new BuildError(`version ${version}: an MSI's major and minor are at most 255`);
  const productVersion = `${major}.${minor}.${patch}`;

  let exe: MsiStamp['exe'];
  let exePath = EXE_PATH;
  if (values.exe) {
    exePath = resolve(values.exe);
    const image = readFileSync(exePath);
    exe = { sha256: createHash('sha256').update(image).digest('hex'), bytes: image.length };
  } else {
    if (!currentExeStamp()) {
      process.stdout.write('dist/rasmon-agent.exe is missing or stale: npm run build:agent-exe\n');
      execFileSync('npm', ['run', '--silent', 'build:agent-exe'], { cwd: REPO_ROOT, stdio: 'inherit' });
    }
    const current = currentExeStamp();
    if (!current) throw new BuildError('npm run build:agent-exe did not produce a current dist/rasmon-agent.exe');
    exe = { sha256: current.sha256, bytes: current.bytes };
  }

  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  // wixl finds sources by relative names only.
  copyFileSync(exePath, join(work, 'rasmon-agent.exe'));
  run('x86_64-w64-mingw32-gcc', [
    '-O2',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-shared',
    '-s',
    '-o',
    join(work, 'rasmon-msi.dll'),
    join(SOURCES, 'agent-step.c'),
    '-lmsi',
  ]);
  const partial = join(work, 'rasmon-agent.msi');
  run(
    'wixl',
    [
      '--arch',
      'x64',
      '-D',
      `Version=${productVersion}`,
      '-D',
      `Manufacturer=${agentPackage.author}`,
      '-D',
      'ExeSource=rasmon-agent.exe',
      '-D',
      'StepDllSource=rasmon-msi.dll',
      '-D',
      `ServiceDescription=${SERVICE_DESCRIPTION}`,
      '-o',
      partial,
      join(SOURCES, 'rasmon-agent.wxs'),
    ],
    work,
  );
  // Public properties reach the deferred (elevated) part of a managed install only when secure.
  sql(
    partial,
    `UPDATE Property SET Value = 'WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;${MSI_PUBLIC_PROPERTIES.join(';')}' WHERE Property = 'SecureCustomProperties'`,
  );
  // msidbCustomActionTypeHideTarget (0x2000): neither the value set, which holds the token, nor the
  // deferred action's CustomActionData is logged (MsiHiddenProperties hides the property itself).
  // https://learn.microsoft.com/windows/win32/msi/custom-action-hidden-target-option
  sql(partial, `UPDATE CustomAction SET Type = ${51 | 0x2000} WHERE Action = 'SetRasmonSetup'`);
  sql(partial, `UPDATE CustomAction SET Type = ${1 | 0x400 | 0x800 | 0x2000} WHERE Action = 'RasmonSetup'`);
  const productCode = run('msiinfo', ['export', partial, 'Property'])
    .split(/\r?\n/)
    .find((line) => line.startsWith('ProductCode\t'))
    ?.split('\t')[1];
  if (!productCode) throw new BuildError('the built package has no ProductCode');

  mkdirSync(dirname(out), { recursive: true });
  rmSync(out, { force: true });
  linkSync(partial, out);
  rmSync(work, { recursive: true, force: true });
  const bytes = statSync(out).size;
  const sha256 = createHash('sha256').update(readFileSync(out)).digest('hex');
  const stamp: MsiStamp = {
    inputs: msiInputsDigest(productVersion, exe.sha256),
    version: productVersion,
    productCode,
    upgradeCode: UPGRADE_CODE,
    bytes,
    sha256,
    exe,
  };
  writeFileSync(`${out}.json`, `${JSON.stringify(stamp, null, 2)}\n`);
  process.stdout.write(
    `${relative(REPO_ROOT, out)}  ${(bytes / 1024 / 1024).toFixed(1)} MiB (${bytes} bytes)  sha256 ${sha256}\n` +
      `  product version ${productVersion}, product code ${productCode}, upgrade code ${UPGRADE_CODE}\n` +
      `  ${relative(REPO_ROOT, exePath)} ${(exe.bytes / 1024 / 1024).toFixed(1)} MiB, sha256 ${exe.sha256}\n`,
  );
}

try {
  main();
} catch (err) {
  process.stderr.write(`build:agent-msi: ${err instanceof BuildError ? err.message : (err as Error).stack}\n`);
  process.exit(1);
}
