/**
 * Reading one field of a RAS REST answer as the documents describe it. The RAS samples carry numbers
 * as strings ("usersPeak": "0"), an empty string where a value is absent ("installedUsers": ""), and
 * dates day-first ("expiryDate": "21/02/2021", "billingPeriodStart": "03/05/2019 05:30"); the schemas
 * mark these fields `string · nullable`. Each reader returns undefined for absent (missing, null or
 * "") and throws {@link FieldError} naming the field for a value of another shape.
 */

/** A field whose value is not what the documents describe. */
export class FieldError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field} ${problem}`);
    this.name = 'FieldError';
  }
}

export type Fields = Readonly<Record<string, unknown>>;

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? 'a long string' : JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return value === null ? 'null' : typeof value === 'object' ? 'an object' : typeof value;
}

function present(fields: Fields, name: string): unknown {
  const value = fields[name];
  return value === undefined || value === null || value === '' ? undefined : value;
}

/** A nullable string; "" is absent. */
export function optionalText(fields: Fields, name: string, path = name): string | undefined {
  const value = present(fields, name);
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new FieldError(path, `must be a string, not ${describe(value)}`);
  return value;
}

/**
 * A count carried as a string of digits ("0", "25"); a JSON whole number is taken too, should a
 * broker send one. Anything else ("many", "-1", "2.5", true) is refused.
 */
export function optionalCount(fields: Fields, name: string, path = name): number | undefined {
  const value = present(fields, name);
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string' && /^\d{1,9}$/.test(value.trim())) return Number(value.trim());
  throw new FieldError(path, `must be a whole number written as a string, not ${describe(value)}`);
}

/** A JSON integer (the RD Sessions schema's `integer · int32` fields). */
export function optionalInteger(fields: Fields, name: string, path = name): number | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  throw new FieldError(path, `must be an integer, not ${describe(value)}`);
}

export function optionalBoolean(fields: Fields, name: string, path = name): boolean | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  throw new FieldError(path, `must be true or false, not ${describe(value)}`);
}

const DAY_FIRST = /^(\d{1,2})\/(\d{1,2})\/(\d{4})(?: (\d{1,2}):(\d{2}))?$/;

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * A day-first date, `dd/mm/yyyy` or `dd/mm/yyyy hh:mm`, as `yyyy-mm-dd` or `yyyy-mm-ddThh:mm`. The
 * documents give no timezone, so none is invented: the result is the broker's calendar date (and
 * wall-clock time). Day-first is the documented order: the Licensing sample's billing period runs
 * from "03/05/2019 05:30" to "02/06/2019 05:30", 3 May to 2 June. An impossible date (31/02) is refused.
 */
export function optionalDayFirstDate(fields: Fields, name: string, path = name): string | undefined {
  const text = optionalText(fields, name, path);
  if (text === undefined) return undefined;
  const match = DAY_FIRST.exec(text.trim());
  const refuse = () =>
    new FieldError(path, `must be a day-first date like "21/02/2021" or "03/05/2019 05:30", not ${describe(text)}`);
  if (!match) throw refuse();
  const [day, month, year] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (year < 1 || date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    throw refuse();
  }
  const calendar = `${String(year).padStart(4, '0')}-${pad(month)}-${pad(day)}`;
  if (match[4] === undefined) return calendar;
  const [hour, minute] = [Number(match[4]), Number(match[5])];
  if (hour > 23 || minute > 59) throw refuse();
  return `${calendar}T${pad(hour)}:${pad(minute)}`;
}

/**
 * An ISO-8601 date-time with its zone as ms since the epoch (the RD Sessions example's `logonTime`,
 * "2025-04-06T01:14:14.612Z"). One without a zone is refused rather than read in this host's zone.
 */
export function optionalIsoTime(fields: Fields, name: string, path = name): number | undefined {
  const text = optionalText(fields, name, path);
  if (text === undefined) return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text)
    ? Date.parse(text)
    : Number.NaN;
  if (Number.isNaN(ms)) throw new FieldError(path, `must be an ISO-8601 date-time with a zone, not ${describe(text)}`);
  return ms;
}
