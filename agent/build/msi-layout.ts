/**
 * What the MSI build and its tests share: where the package goes, its stamp, its upgrade code (the
 * one in msi/rasmon-agent.wxs, which must never change) and its public properties.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { currentExeStamp, REPO_ROOT, type ExeStamp } from './exe-inputs.js';

export const MSI_PATH = join(REPO_ROOT, 'dist', 'rasmon-agent.msi');

/** Every version of the agent's package shares it: the detection rule and MajorUpgrade key on it. */
export const UPGRADE_CODE = '{64D0F719-C12B-4A18-9508-892A796D37F5}';

/** The properties an unattended install takes (docs/agent-msi.md). */
export const MSI_PUBLIC_PROPERTIES = [
  'COLLECTOR',
  'FARM',
  'TOKEN',
  'TOKENFILE',
  'HOSTNAME',
  'CONFIGFILE',
  'SOURCE',
  'REMOVEDATA',
] as const;

/** Written beside the package: what it was built from and what identifies it. */
export interface MsiStamp {
  /** msiInputsDigest() of the build. */
  inputs: string;
  version: string;
  productCode: string;
  upgradeCode: string;
  bytes: number;
  sha256: string;
  /** The exe inside. */
  exe: Pick<ExeStamp, 'sha256' | 'bytes'>;
}

const MSI_SOURCES = ['agent/build/msi', 'agent/build/build-msi.ts', 'agent/build/msi-layout.ts'];

/** sha256 over the package's sources, the exe inside and the product version. */
export function msiInputsDigest(version: string, exeSha256: string, root = REPO_ROOT): string {
  const hash = createHash('sha256').update(`${version}\0${exeSha256}\0`);
  for (const source of MSI_SOURCES) {
    const path = join(root, source);
    const files = statSync(path).isDirectory()
      ? readdirSync(path)
          .sort()
          .map((name) => join(source, name))
      : [source];
    for (const file of files)
      hash
        .update(`${file}\0`)
        .update(readFileSync(join(root, file)))
        .update('\0');
  }
  return hash.digest('hex');
}

/** The stamp of the package at `path`, when it was built from the current sources and exe. */
export function currentMsiStamp(path = MSI_PATH, root = REPO_ROOT): MsiStamp | undefined {
  const exe = currentExeStamp(root);
  if (!exe || !existsSync(path) || !existsSync(`${path}.json`)) return undefined;
  const stamp = JSON.parse(readFileSync(`${path}.json`, 'utf8')) as MsiStamp;
  if (stamp.bytes !== statSync(path).size) return undefined;
  if (stamp.inputs !== msiInputsDigest(stamp.version, exe.sha256, root)) return undefined;
  return stamp;
}
