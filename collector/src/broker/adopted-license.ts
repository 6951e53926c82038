/**
 * With `ras.adopt`, a farm's seats, license kind and expiry come from what RAS reports
 * (`GET /api/License`), and the farm's own values are only the fallback until RAS has answered
 * (docs/design.md §4, "Broker connector"):
 * - seats: `installedUsers` ("Maximum number of licensed users"). Absent (an SPLA farm bills by use
 *   and may have none): no cap, as for an SPLA farm without `seats`.
 * - license: `type` 3 PostPaid is SPLA (billed by use after the month); 1 Permanent, 2 PrePaid and the
 *   trials are a primary license. RAS's type cannot say "sublicense" (a key activated under another
 *   farm's): a farm configured `sublicense` keeps it while RAS says a primary kind.
 * - expires: `expiryDate`, a calendar date (dd/mm/yyyy) without a time or zone. It is read as
 *   00:00 UTC of that day: the earlier end, so that no alert comes later than RAS's own.
 */
import type { LicenseKind } from '@rasmon/protocol';
import type { RasLicense } from './license-reader.js';

/** The license values a farm takes from RAS; a value RAS did not give is absent. */
export interface AdoptedLicense {
  readonly seats?: number | undefined;
  readonly license?: LicenseKind | undefined;
  /** ms. */
  readonly expires?: number | undefined;
}

/** What the farm's configuration says, for the same three values. */
export interface ConfiguredLicense {
  readonly seats?: number | undefined;
  readonly license?: LicenseKind | undefined;
  readonly expires?: number | undefined;
}

function kindOf(type: RasLicense['type'], configured: LicenseKind | undefined): LicenseKind | undefined {
  if (type === undefined || type === 'undocumented') return undefined;
  if (type === 'postpaid') return 'spla';
  return configured === 'sublicense' ? 'sublicense' : 'primary';
}

function expiryOf(date: string | undefined): number | undefined {
  if (date === undefined) return undefined;
  const [year, month, day] = date.split('-').map(Number) as [number, number, number];
  const at = new Date(0);
  at.setUTCFullYear(year, month - 1, day);
  return at.getTime();
}

/** The values to adopt from RAS's license, given the farm's configured kind (for `sublicense`). */
export function adoptedLicense(license: RasLicense, configured: ConfiguredLicense): AdoptedLicense {
  const kind = kindOf(license.type, configured.license);
  const expires = expiryOf(license.expiryDate);
  return {
    ...(license.installedUsers === undefined ? {} : { seats: license.installedUsers }),
    ...(kind === undefined ? {} : { license: kind }),
    ...(expires === undefined ? {} : { expires }),
  };
}

/** One value the configuration gives otherwise than RAS. */
export interface LicenseDisagreement {
  readonly field: 'seats' | 'license' | 'expires';
  readonly configured: number | string;
  readonly ras: number | string;
}

/** The values the configuration gives and RAS gives otherwise (expiry compared by calendar day). */
export function disagreements(configured: ConfiguredLicense, adopted: AdoptedLicense): LicenseDisagreement[] {
  const out: LicenseDisagreement[] = [];
  if (configured.seats !== undefined && adopted.seats !== undefined && configured.seats !== adopted.seats)
    out.push({ field: 'seats', configured: configured.seats, ras: adopted.seats });
  if (configured.license !== undefined && adopted.license !== undefined && configured.license !== adopted.license)
    out.push({ field: 'license', configured: configured.license, ras: adopted.license });
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  if (
    configured.expires !== undefined &&
    adopted.expires !== undefined &&
    day(configured.expires) !== day(adopted.expires)
  )
    out.push({ field: 'expires', configured: day(configured.expires), ras: day(adopted.expires) });
  return out;
}
