/**
 * What makes node.exe rasmon-agent.exe in the eyes of Windows: its Authenticode signature goes (it
 * signs node.exe, and no longer holds once the agent is in it), its version resource is rasmon's
 * instead of Node.js's, and its PE checksum is right for the bytes it ends with. An unsigned exe then
 * verifies as "no signature", never as a tampered one; `npm run sign:agent` signs it afresh.
 *
 * resedit (with its pe-library) edits the resources: a maintained pure-JS PE resource editor, so
 * the build needs no Windows tool (rcedit, signtool) and no wine.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** The part of resedit's API used here. */
interface VersionLanguage {
  lang: number;
  codepage: number;
}
interface VersionInfo {
  fixedInfo: { fileVersionMS: number; fileVersionLS: number };
  setFileVersion(major: number, minor: number, patch: number, build: number, lang: number): void;
  setProductVersion(major: number, minor: number, patch: number, build: number, lang: number): void;
  setStringValues(language: VersionLanguage, values: Record<string, string>): void;
  getAllLanguagesForStringValues(): VersionLanguage[];
  getStringValues(language: VersionLanguage): Record<string, string>;
  outputToResourceEntries(entries: ResourceEntry[]): void;
}
interface ResourceEntry {
  type: number | string;
}
interface Executable {
  generate(): ArrayBuffer;
}
interface Resedit {
  NtExecutable: { from(image: Buffer, options?: { ignoreCert?: boolean }): Executable };
  NtExecutableResource: {
    from(exe: Executable): { entries: ResourceEntry[]; outputResource(exe: Executable): void };
  };
  Resource: {
    VersionInfo: {
      create(options: {
        lang: number;
        fixedInfo: object;
        strings: Array<VersionLanguage & { values: Record<string, string> }>;
      }): VersionInfo;
      fromEntries(entries: ResourceEntry[]): VersionInfo[];
    };
  };
}

/**
 * resedit, loaded when used. Its type declarations are not imported: they pull TypeScript's DOM library
 * (through pe-library) into every project that compiles this file, and with it browser globals and
 * browser typings of fetch into Node code and its tests.
 */
async function resedit(): Promise<Resedit> {
  const name = 'resedit';
  return (await import(name)) as Resedit;
}

/** VS_VERSIONINFO's resource type (RT_VERSION). */
const RT_VERSION = 16;
/** en-US, in UTF-16 (codepage 1200): the language every string below is in. */
const LANGUAGE = { lang: 1033, codepage: 1200 } as const;

export interface ExeIdentity {
  /** x.y.z from package.json: the file and product version. */
  version: string;
  company: string;
  product: string;
  description: string;
  originalFilename: string;
  copyright: string;
}

/** x.y.z[-pre] as the four numbers a version resource holds (a prerelease counts as its x.y.z). */
export function versionNumbers(version: string): [number, number, number, number] {
  const match = /^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(version);
  if (!match) throw new Error(`version "${version}" is not x.y.z`);
  const [major, minor, patch] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if ([major, minor, patch].some((n) => n > 0xffff)) throw new Error(`version "${version}": a part exceeds 65535`);
  return [major, minor, patch, 0];
}

/**
 * Rewrites `file` in place: no certificate, one version resource saying `identity`. Everything else
 * (icon, manifest, other resources, sections) is kept.
 */
export async function setExeIdentity(file: string, identity: ExeIdentity): Promise<void> {
  const { NtExecutable, NtExecutableResource, Resource } = await resedit();
  const exe = NtExecutable.from(readFileSync(file), { ignoreCert: true });
  const resources = NtExecutableResource.from(exe);
  resources.entries = resources.entries.filter((entry) => entry.type !== RT_VERSION);
  const [major, minor, patch, build] = versionNumbers(identity.version);
  const info = Resource.VersionInfo.create({
    lang: LANGUAGE.lang,
    fixedInfo: {},
    strings: [
      {
        lang: LANGUAGE.lang,
        codepage: LANGUAGE.codepage,
        values: {
          CompanyName: identity.company,
          FileDescription: identity.description,
          FileVersion: identity.version,
          InternalName: identity.originalFilename.replace(/\.exe$/i, ''),
          LegalCopyright: identity.copyright,
          OriginalFilename: identity.originalFilename,
          ProductName: identity.product,
          ProductVersion: identity.version,
        },
      },
    ],
  });
  info.setFileVersion(major, minor, patch, build, LANGUAGE.lang);
  info.setProductVersion(major, minor, patch, build, LANGUAGE.lang);
  // Those two also write the strings as four numbers; the strings say the version as released.
  info.setStringValues(LANGUAGE, { FileVersion: identity.version, ProductVersion: identity.version });
  info.outputToResourceEntries(resources.entries);
  resources.outputResource(exe);
  // generate() writes no certificate table: ignoreCert parsed it away.
  writeFileSync(file, Buffer.from(exe.generate()));
}

/** One version resource as read back: its fixed file version and its string tables by language. */
export interface VersionResource {
  fileVersionMS: number;
  fileVersionLS: number;
  tables: Array<{ language: VersionLanguage; strings: Record<string, string> }>;
}

/** The version resources of an exe. */
export async function readVersionResources(file: string): Promise<VersionResource[]> {
  const { NtExecutable, NtExecutableResource, Resource } = await resedit();
  const exe = NtExecutable.from(readFileSync(file));
  return Resource.VersionInfo.fromEntries(NtExecutableResource.from(exe).entries).map((info) => ({
    fileVersionMS: info.fixedInfo.fileVersionMS,
    fileVersionLS: info.fixedInfo.fileVersionLS,
    tables: info
      .getAllLanguagesForStringValues()
      .map((language) => ({ language, strings: info.getStringValues(language) })),
  }));
}

/** Offset of IMAGE_OPTIONAL_HEADER.CheckSum: e_lfanew + "PE\0\0" (4) + IMAGE_FILE_HEADER (20) + 64. */
function checksumOffset(image: Buffer): number {
  const peOffset = image.readUInt32LE(0x3c);
  if (image.toString('latin1', peOffset, peOffset + 4) !== 'PE\0\0') throw new Error('not a PE image');
  return peOffset + 4 + 20 + 64;
}

/**
 * The PE checksum as imagehlp's CheckSumMappedFile computes it: the image's 16-bit words summed with
 * the carry folded back in, the CheckSum field itself counted as zero, plus the file's length.
 */
export function peChecksum(image: Buffer): number {
  const skip = checksumOffset(image);
  let sum = 0;
  for (let offset = 0; offset < image.length; offset += 2) {
    if (offset === skip || offset === skip + 2) continue;
    const word = offset + 1 < image.length ? image.readUInt16LE(offset) : image[offset]!;
    sum += word;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum + image.length) >>> 0;
}

/** Writes the right PE checksum into `file` (what osslsigncode and the loader of drivers check). */
export function writePeChecksum(file: string): number {
  const image = readFileSync(file);
  const checksum = peChecksum(image);
  image.writeUInt32LE(checksum, checksumOffset(image));
  writeFileSync(file, image);
  return checksum;
}

/** The CheckSum field as the file holds it. */
export function storedPeChecksum(image: Buffer): number {
  return image.readUInt32LE(checksumOffset(image));
}
