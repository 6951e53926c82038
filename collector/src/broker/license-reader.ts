/**
 * `GET /api/License` read into typed values.
 *
 * Sources (docs.parallels.com, RAS REST API guide):
 * - "Licensing" reference, api-reference/farm-settings/licensing: the `License` schema. licenseType,
 *   licenseKey, expiryDate, installedUsers ("Maximum number of licensed users"), usersPeak ("Maximum
 *   amount of connected users since the product was installed"), usersLicenseInfo ("Amount of users
 *   currently connected"), gracePeriodState, gracePeriodDaysLeft, statusMessage, alertMessage are
 *   `string · nullable`; needsAttention is a boolean; type is the License Type enum 1 = Permanent,
 *   2 = PrePaid, 3 = PostPaid, 4 = ExtTrial, 5 = LegacyTrial, 6 = NormalTrial.
 * - "Licensing Sample", examples/licensing-sample: the answer as sent, with numbers as strings
 *   ("usersPeak": "0"), "" for absent values ("installedUsers": ""), day-first dates ("expiryDate":
 *   "21/02/2021", "billingPeriodStart": "03/05/2019 05:30"), `"type": 3` as a JSON number, and the
 *   fields usageToday, currPeriodUsage, billingPeriodStart, billingPeriodEnd, licenseStatus that the
 *   schema does not list.
 * licenseKey and the sample's paUserName, paCompanyName, paUserEmail are not read: the collector has
 * no use for a key or a person's name.
 */
import { BrokerError } from './broker-error.js';
import {
  FieldError,
  optionalBoolean,
  optionalCount,
  optionalDayFirstDate,
  optionalText,
  type Fields,
} from './ras-fields.js';

/** The License Type enum of the Licensing reference, by its documented number. */
export const LICENSE_TYPES = {
  1: 'permanent',
  2: 'prepaid',
  3: 'postpaid',
  4: 'ext-trial',
  5: 'legacy-trial',
  6: 'normal-trial',
} as const;
export type LicenseTypeName = (typeof LICENSE_TYPES)[keyof typeof LICENSE_TYPES];

const TYPE_BY_NAME = new Map<string, LicenseTypeName>(
  Object.values(LICENSE_TYPES).map((name) => [name.replace('-', ''), name]),
);

/** The farm's license as RAS reports it. Every field may be absent: the documents mark them nullable. */
export interface RasLicense {
  /** `licenseType`, the product's wording ("Parallels Remote Application Server SPLA"). */
  readonly licenseType?: string;
  /** `type`, by name; absent when RAS sent none, `undocumented` when it sent a value the enum lacks. */
  readonly type?: LicenseTypeName | 'undocumented';
  /** `type` as sent, when it is `undocumented`. */
  readonly undocumentedType?: unknown;
  /** `expiryDate`, the broker's calendar date `yyyy-mm-dd`. */
  readonly expiryDate?: string;
  /** `installedUsers`: licensed users (seats). */
  readonly installedUsers?: number;
  /** `usersLicenseInfo`: users counted now. */
  readonly usersLicenseInfo?: number;
  /** `usersPeak`: most users counted at once since installation. */
  readonly usersPeak?: number;
  readonly gracePeriodState?: string;
  readonly gracePeriodDaysLeft?: number;
  readonly needsAttention?: boolean;
  readonly statusMessage?: string;
  readonly alertMessage?: string;
  /** From the sample only. */
  readonly licenseStatus?: string;
  readonly usageToday?: number;
  readonly currPeriodUsage?: number;
  /** `yyyy-mm-ddThh:mm`, the broker's wall clock. */
  readonly billingPeriodStart?: string;
  readonly billingPeriodEnd?: string;
}

function readType(fields: Fields): Pick<RasLicense, 'type' | 'undocumentedType'> {
  const value = fields.type;
  if (value === undefined || value === null || value === '') return {};
  // The sample sends a number, the schema calls the enum a string: both spellings, and the names.
  const code =
    typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined;
  if (code !== undefined) {
    const name = (LICENSE_TYPES as Record<number, LicenseTypeName>)[code];
    return name ? { type: name } : { type: 'undocumented', undocumentedType: value };
  }
  if (typeof value === 'string') {
    const name = TYPE_BY_NAME.get(value.toLowerCase());
    return name ? { type: name } : { type: 'undocumented', undocumentedType: value };
  }
  throw new FieldError('type', `must be a License Type number or name, not ${typeof value}`);
}

/** Drops the keys whose value is undefined, so an absent field is absent and not `undefined`. */
function defined<T extends object>(record: { [K in keyof T]: T[K] | undefined }): T {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as T;
}

/**
 * Reads the body of `GET /api/License`.
 *
 * @throws {@link BrokerError} `bad_response` naming the field at fault when a field has another shape
 *   than the documents give it. An undocumented `type` value is not an error: it reads as `undocumented`.
 */
export function readLicenseBody(body: unknown): RasLicense {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new BrokerError('bad_response', 'GET /api/License: the answer is not a JSON object', { field: '' });
  }
  const fields = body as Fields;
  try {
    return defined<RasLicense>({
      licenseType: optionalText(fields, 'licenseType'),
      ...readType(fields),
      expiryDate: optionalDayFirstDate(fields, 'expiryDate'),
      installedUsers: optionalCount(fields, 'installedUsers'),
      usersLicenseInfo: optionalCount(fields, 'usersLicenseInfo'),
      usersPeak: optionalCount(fields, 'usersPeak'),
      gracePeriodState: optionalText(fields, 'gracePeriodState'),
      gracePeriodDaysLeft: optionalCount(fields, 'gracePeriodDaysLeft'),
      needsAttention: optionalBoolean(fields, 'needsAttention'),
      statusMessage: optionalText(fields, 'statusMessage'),
      alertMessage: optionalText(fields, 'alertMessage'),
      licenseStatus: optionalText(fields, 'licenseStatus'),
      usageToday: optionalCount(fields, 'usageToday'),
      currPeriodUsage: optionalCount(fields, 'currPeriodUsage'),
      billingPeriodStart: optionalDayFirstDate(fields, 'billingPeriodStart'),
      billingPeriodEnd: optionalDayFirstDate(fields, 'billingPeriodEnd'),
    });
  } catch (err) {
    if (err instanceof FieldError) {
      throw new BrokerError('bad_response', `GET /api/License: ${err.message}`, { field: err.field });
    }
    throw err;
  }
}
