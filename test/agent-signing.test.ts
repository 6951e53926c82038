/**
 * Whose rasmon-agent.exe is: its version resource, its (absent) signature, and `npm run sign:agent`
 * with a throwaway certificate made here by openssl, checked by `osslsigncode verify`. Signing works
 * on copies in a temporary folder: dist/ stays unsigned for the other tests.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peChecksum, readVersionResources, storedPeChecksum, versionNumbers } from '../agent/build/exe-identity.js';
import { EXE_PATH, REPO_ROOT } from '../agent/build/exe-inputs.js';
import { ensureAgentMsi, MSI_PATH, withMsiBuildLock } from './support/msi.js';

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'agent', 'package.json'), 'utf8')) as { version: string })
  .version;

const TOOLS: Record<string, string> = {
  osslsigncode: 'osslsigncode',
  openssl: 'openssl',
  msiextract: 'msitools',
  msiinfo: 'msitools',
  msibuild: 'msitools',
  wixl: 'wixl',
  'x86_64-w64-mingw32-gcc': 'gcc-mingw-w64-x86-64',
};
const missing = Object.keys(TOOLS).filter(
  (tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0,
);
const SKIP =
  missing.length === 0
    ? undefined
    : `${missing.join(', ')} not on the PATH (Debian: apt-get install ${[...new Set(missing.map((tool) => TOOLS[tool]))].join(' ')})`;

function verify(file: string, ...args: string[]) {
  const result = spawnSync('osslsigncode', ['verify', '-in', file, ...args], { encoding: 'utf8' });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe.skipIf(SKIP !== undefined)(
  `rasmon-agent.exe and .msi: identity and signing${SKIP ? ` (${SKIP})` : ''}`,
  () => {
    let dir: string;

    beforeAll(async () => {
      await ensureAgentMsi();
      dir = mkdtempSync(join(tmpdir(), 'rasmon-sign-'));
    }, 900_000);

    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("the exe's version resource is rasmon's, not Node.js's", async () => {
      const infos = await readVersionResources(EXE_PATH);
      expect(infos).toHaveLength(1);
      const info = infos[0]!;
      expect(info.tables.map((table) => table.language)).toEqual([{ lang: 1033, codepage: 1200 }]);
      const strings = info.tables[0]!.strings;
      expect(strings).toMatchObject({
        ProductName: 'rasmon',
        FileDescription: 'rasmon agent',
        CompanyName: 'rasmon',
        OriginalFilename: 'rasmon-agent.exe',
        InternalName: 'rasmon-agent',
        FileVersion: VERSION,
        ProductVersion: VERSION,
      });
      for (const key of ['ProductName', 'FileDescription', 'CompanyName', 'OriginalFilename'])
        expect(strings[key]).not.toMatch(/node/i);
      const [major, minor, patch] = versionNumbers(VERSION);
      expect(info.fileVersionMS).toBe(major * 0x10000 + minor);
      expect(info.fileVersionLS).toBe(patch * 0x10000);
    });

    it('unsigned, the exe and the MSI verify as having no signature, never as an invalid one', () => {
      const image = readFileSync(EXE_PATH);
      expect(storedPeChecksum(image)).toBe(peChecksum(image));
      const exe = verify(EXE_PATH);
      expect(exe.output).toContain('No signature found');
      expect(exe.output).not.toMatch(/invalid|mismatch|Calculated PE checksum/i);
      expect(exe.output).toMatch(
        new RegExp(`PE checksum\\s*: ${peChecksum(image).toString(16).padStart(8, '0')}`, 'i'),
      );
      const msi = verify(MSI_PATH);
      expect(msi.output).toContain('MSI file has no signature');
      expect(msi.output).not.toMatch(/invalid|mismatch/i);
    });

    it('sign:agent signs the exe, packs it into the MSI again and signs that; osslsigncode verify passes', async () => {
      const cert = join(dir, 'cert.pem');
      const key = join(dir, 'key.pem');
      const made = spawnSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '2',
          '-subj',
          '/CN=rasmon throwaway code signing',
          '-addext',
          'extendedKeyUsage=codeSigning',
          '-keyout',
          key,
          '-out',
          cert,
        ],
        { encoding: 'utf8' },
      );
      expect(made.status, made.stderr).toBe(0);
      const exe = join(dir, 'rasmon-agent.exe');
      const msi = join(dir, 'rasmon-agent.msi');
      copyFileSync(EXE_PATH, exe);

      // Under the MSI build lock: sign:agent builds the package again.
      const signed = await withMsiBuildLock(() =>
        spawnSync(
          'npm',
          ['run', '--silent', 'sign:agent', '--', '--cert', cert, '--key', key, '--exe', exe, '--msi', msi],
          { cwd: REPO_ROOT, encoding: 'utf8', timeout: 600_000 },
        ),
      );
      expect(signed.status, `${signed.stdout}${signed.stderr}`).toBe(0);
      expect(signed.stdout).toContain(`signed ${exe}\nsigned ${msi}\n`);

      for (const file of [exe, msi]) {
        const result = verify(file, '-CAfile', cert);
        expect(result.output, file).toMatch(/Signature verification: ok/);
        expect(result.output).toContain('Subject: /CN=rasmon throwaway code signing');
        expect(result.code).toBe(0);
      }
      // The MSI carries the signed exe, not the unsigned one it was first built with.
      const extracted = join(dir, 'extracted');
      const extract = spawnSync('msiextract', ['-C', extracted, msi], { encoding: 'utf8' });
      expect(extract.status, extract.stderr).toBe(0);
      // msiextract lists what it wrote, relative to its -C folder.
      const listed = extract.stdout
        .split(/\r?\n/)
        .find((line) => line.endsWith('rasmon-agent.exe'))
        ?.trim();
      expect(listed).toBeDefined();
      const inside = join(extracted, listed!);
      expect(sha256(inside)).toBe(sha256(exe));
      expect(verify(inside, '-CAfile', cert).output).toMatch(/Signature verification: ok/);
    }, 600_000);

    it('sign:agent refuses a missing key file, naming it', () => {
      const run = spawnSync(
        'npm',
        ['run', '--silent', 'sign:agent', '--', '--cert', join(dir, 'cert.pem'), '--key', join(dir, 'absent.pem')],
        { cwd: REPO_ROOT, encoding: 'utf8' },
      );
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`sign:agent: --key ${join(dir, 'absent.pem')}: no such file`);
    });
  },
);
