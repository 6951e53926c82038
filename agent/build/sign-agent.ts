/**
 * `npm run sign:agent -- --cert CERT --key KEY [--pass-file FILE] [--timestamp URL] [--exe FILE]
 * [--msi FILE]`: Authenticode-signs rasmon-agent.exe, packs the signed exe into rasmon-agent.msi
 * again (a package built before would hold the unsigned one), and signs the package, with
 * osslsigncode (Debian's `osslsigncode`), SHA-256. CERT is the code-signing certificate and its chain
 * (PEM or DER), KEY its private key; a PKCS#12 file goes in --cert with no --key. The private key's
 * passphrase, if any, is read from --pass-file, never from the command line. Each signature is
 * verified before this ends. On Windows, signtool does the same (docs/agent-msi.md, "Signing").
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { currentExeStamp, EXE_PATH, EXE_STAMP_PATH, REPO_ROOT, type ExeStamp } from './exe-inputs.js';
import { MSI_PATH, type MsiStamp } from './msi-layout.js';

class SignError extends Error {}

const DESCRIPTION = 'rasmon agent';
const URL_INFO = 'https://github.com/rasmon/rasmon';

interface Options {
  cert: string;
  key?: string | undefined;
  passFile?: string | undefined;
  timestamp?: string | undefined;
}

function osslsigncode(args: string[]): string {
  const result = spawnSync('osslsigncode', args, { encoding: 'utf8' });
  if (result.error)
    throw new SignError(`osslsigncode cannot run (${result.error.message}): apt-get install osslsigncode`);
  if (result.status !== 0)
    throw new SignError(`osslsigncode ${args[0]} failed (${result.status}):\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** Signs `file` in place: to a file beside it, then renamed over it. */
function sign(file: string, options: Options): void {
  const signed = `${file}.signed${extname(file)}`;
  const credentials =
    options.key === undefined ? ['-pkcs12', options.cert] : ['-certs', options.cert, '-key', options.key];
  const args = ['sign', ...credentials, '-h', 'sha256', '-n', DESCRIPTION, '-i', URL_INFO];
  if (options.passFile) args.push('-readpass', options.passFile);
  if (options.timestamp) args.push('-ts', options.timestamp);
  rmSync(signed, { force: true });
  try {
    osslsigncode([...args, '-in', file, '-out', signed]);
    renameSync(signed, file);
  } finally {
    rmSync(signed, { force: true });
  }
}

/** The signature's own check (its digest and structure), whoever issued the certificate. */
function verifySignature(file: string, cert: string): void {
  osslsigncode(['verify', '-in', file, '-CAfile', cert]);
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function main(): void {
  const { values } = parseArgs({
    options: {
      cert: { type: 'string' },
      key: { type: 'string' },
      'pass-file': { type: 'string' },
      timestamp: { type: 'string' },
      exe: { type: 'string' },
      msi: { type: 'string' },
    },
    strict: true,
  });
  if (!values.cert) throw new SignError('--cert FILE is required (with --key FILE, or a PKCS#12 file alone)');
  for (const [flag, file] of [
    ['--cert', values.cert],
    ['--key', values.key],
    ['--pass-file', values['pass-file']],
  ] as const) {
    if (file !== undefined && !existsSync(file)) throw new SignError(`${flag} ${file}: no such file`);
  }
  const options: Options = {
    cert: resolve(values.cert),
    key: values.key && resolve(values.key),
    passFile: values['pass-file'] && resolve(values['pass-file']),
    timestamp: values.timestamp,
  };
  const exe = values.exe ? resolve(values.exe) : EXE_PATH;
  const msi = values.msi ? resolve(values.msi) : MSI_PATH;
  if (!existsSync(exe)) throw new SignError(`${exe}: no such file (npm run build:agent-exe)`);
  // The package keeps its product version across the re-pack.
  const stampPath = `${msi}.json`;
  const version = existsSync(stampPath) ? (JSON.parse(readFileSync(stampPath, 'utf8')) as MsiStamp).version : undefined;
  const exeStamp = exe === EXE_PATH ? currentExeStamp() : undefined;

  sign(exe, options);
  if (exeStamp) {
    // Still the build of the current sources, now signed: the stamp follows the new bytes.
    const stamp: ExeStamp = { ...exeStamp, sha256: sha256(exe), bytes: statSync(exe).size };
    writeFileSync(EXE_STAMP_PATH, `${JSON.stringify(stamp, null, 2)}\n`);
  }
  verifySignature(exe, options.cert);
  const build = spawnSync(
    'npm',
    [
      'run',
      '--silent',
      'build:agent-msi',
      '--',
      '--exe',
      exe,
      '--out',
      msi,
      ...(version ? ['--version', version] : []),
    ],
    { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (build.status !== 0) throw new SignError('npm run build:agent-msi failed');
  sign(msi, options);
  verifySignature(msi, options.cert);
  const stamp = JSON.parse(readFileSync(stampPath, 'utf8')) as MsiStamp;
  writeFileSync(
    stampPath,
    `${JSON.stringify({ ...stamp, sha256: sha256(msi), bytes: statSync(msi).size }, null, 2)}\n`,
  );
  process.stdout.write(`signed ${exe}\nsigned ${msi}\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`sign:agent: ${err instanceof SignError ? err.message : (err as Error).stack}\n`);
  process.exit(1);
}
