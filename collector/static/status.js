// What the status page says of the farms, as plain data and words: the headline, the order of the
// farms by severity, dates in UTC and the viewer's time, the forecast. No DOM here, so Node can
// import it too (test/status-words.test.ts).

export const DAY_MS = 86400000;
/** A license this close to its expiry is "expiring" (the page's amber). */
export const EXPIRING_DAYS = 30;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH_NAMES = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
const two = (n) => String(n).padStart(2, '0');

/** "6 d 23 h", "5 h 12 min", "4 min": what is left of a span, to the minute. */
export function duration(ms) {
  const abs = Math.abs(ms);
  const days = Math.floor(abs / DAY_MS);
  const hours = Math.floor((abs % DAY_MS) / 3600000);
  const minutes = Math.floor((abs % 3600000) / 60000);
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${minutes} min`;
  return `${minutes} min`;
}

/** "2026-12-12 14:05 UTC", or "never". */
export function utcTime(iso) {
  if (!iso) return 'never';
  return `${new Date(iso).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function fieldsOf(ms, now, local) {
  const d = new Date(ms);
  const n = new Date(now);
  return local
    ? {
        year: d.getFullYear(),
        month: d.getMonth(),
        day: d.getDate(),
        hours: d.getHours(),
        minutes: d.getMinutes(),
        thisYear: n.getFullYear(),
      }
    : {
        year: d.getUTCFullYear(),
        month: d.getUTCMonth(),
        day: d.getUTCDate(),
        hours: d.getUTCHours(),
        minutes: d.getUTCMinutes(),
        thisYear: n.getUTCFullYear(),
      };
}

const dateOf = (p) => `${p.day} ${MONTHS[p.month]}${p.year === p.thisYear ? '' : ` ${p.year}`}`;
const clockOf = (p) => `${two(p.hours)}:${two(p.minutes)}`;

/** "12 Dec 14:05" in UTC, or in the viewer's zone (`local`); the year only when it is not `now`'s. */
export function dayTime(ms, now, local) {
  const p = fieldsOf(ms, now, local);
  return `${dateOf(p)} ${clockOf(p)}`;
}

/** "12 Dec 14:05 UTC (15:05 your time)": UTC, and the viewer's clock where it is not UTC. */
export function whenText(ms, now) {
  const utc = fieldsOf(ms, now, false);
  const text = `${dateOf(utc)} ${clockOf(utc)} UTC`;
  if (new Date(ms).getTimezoneOffset() === 0) return text;
  const local = fieldsOf(ms, now, true);
  // The viewer's date only when it is another day than UTC's.
  const localText =
    local.day === utc.day && local.month === utc.month ? clockOf(local) : `${dateOf(local)} ${clockOf(local)}`;
  return `${text} (${localText} your time)`;
}

/** "15 December", with the year when it is not the current one (a YYYY-MM-DD day, UTC). */
export function dayName(day, now) {
  const [year, month, date] = day.split('-').map(Number);
  const thisYear = new Date(now).getUTCFullYear();
  return `${date} ${MONTH_NAMES[month - 1]}${year === thisYear ? '' : ` ${year}`}`;
}

/**
 * The forecast in words ("at this trend, full in about 9 days, by 15 December"; "…has reached the
 * seats" when its trend is there already), or null when the
 * farm has none (no seats, a flat or falling trend, or a collector that does not forecast).
 */
export function forecastText(forecast, now) {
  if (!forecast || typeof forecast.fullInDays !== 'number' || typeof forecast.fullBy !== 'string') return null;
  const days = Math.round(forecast.fullInDays);
  // 0: the trend of the daily peak has reached the seats already (the collector's forecast never
  // says less than a whole day otherwise).
  if (days < 1) return 'at this trend, the daily peak has reached the seats';
  return `at this trend, full in about ${plural(days, 'day', 'days')}, by ${dayName(forecast.fullBy, now)}`;
}

/** Over its seats now (an SPLA farm without seats never is). */
export const overSeats = (farm) => farm.seats !== null && farm.overuseUsers > 0;

/** Its overuse grace is counting down (started, not used up). */
export const graceRunning = (farm) => farm.overuseGrace.started && !farm.overuseGrace.exhausted;

/** `expired`, `grace` (the 30-day expiry grace), `expiring` (within EXPIRING_DAYS) or null. */
export function licenseTrouble(farm, now) {
  if (farm.state === 'expired' || farm.state === 'grace') return farm.state;
  if (farm.expires && Date.parse(farm.expires) - now < EXPIRING_DAYS * DAY_MS) return 'expiring';
  return null;
}

/**
 * Where a farm stands, most urgent first: [group, when] where group 0 is over its seats (a deactivation
 * risk first, then the overuse grace that ends soonest), 1 within its seats with the overuse grace
 * counting, 2 a license expired, in its expiry grace or expiring (the one that runs out soonest first),
 * 3 the rest.
 */
export function severity(farm, now) {
  const graceEnd = farm.overuseGrace.endsAt ? Date.parse(farm.overuseGrace.endsAt) : Infinity;
  if (overSeats(farm)) return [0, farm.deactivationRisk ? -Infinity : graceEnd];
  if (graceRunning(farm)) return [1, graceEnd];
  if (licenseTrouble(farm, now)) return [2, Date.parse(farm.graceEnd ?? farm.expires)];
  return [3, 0];
}

/** The farms by severity, then by name: the order stays put from one refresh to the next. */
export function bySeverity(farms, now) {
  const keyed = farms.map((farm) => ({ farm, key: severity(farm, now) }));
  keyed.sort(
    (a, b) =>
      a.key[0] - b.key[0] ||
      (a.key[1] === b.key[1] ? 0 : a.key[1] < b.key[1] ? -1 : 1) ||
      (a.farm.id < b.farm.id ? -1 : a.farm.id > b.farm.id ? 1 : 0),
  );
  return keyed.map((entry) => entry.farm);
}

/**
 * The line the page opens with: `level` (bad, warn or ok) and its parts, e.g. ["1 farm over its seats",
 * "1 in overuse grace: farm-a deactivates 12 Dec 14:05 UTC if still over", "1 license past its expiry,
 * in the expiry grace"]; "All farms within their seats" first when none is over.
 */
export function headline(farms, now) {
  const over = farms.filter(overSeats);
  const risk = farms.filter((farm) => farm.deactivationRisk);
  const grace = farms.filter(graceRunning);
  const trouble = (kind) => farms.filter((farm) => licenseTrouble(farm, now) === kind).length;
  const expired = trouble('expired');
  const expiryGrace = trouble('grace');
  const expiring = trouble('expiring');
  const attention = farms.filter((farm) => farm.broker && farm.broker.needsAttention).length;
  const parts = [
    over.length === 0
      ? 'All farms within their seats'
      : over.length === 1
        ? '1 farm over its seats'
        : `${over.length} farms over their seats`,
  ];
  if (risk.length > 0) parts.push(`${risk.length} at risk of deactivation now (overuse grace used up)`);
  if (grace.length > 0) {
    const first = grace
      .slice()
      .sort((a, b) => Date.parse(a.overuseGrace.endsAt) - Date.parse(b.overuseGrace.endsAt))[0];
    const when = whenText(Date.parse(first.overuseGrace.endsAt), now);
    const what = overSeats(first) ? `deactivates ${when} if still over` : `ends its grace ${when}`;
    parts.push(`${grace.length} in overuse grace: ${first.id} ${what}`);
  }
  if (expired > 0) parts.push(`${plural(expired, 'license', 'licenses')} expired`);
  if (expiryGrace > 0)
    parts.push(
      `${expiryGrace === 1 ? '1 license past its' : `${expiryGrace} licenses past their`} expiry, in the expiry grace`,
    );
  if (expiring > 0) parts.push(`${plural(expiring, 'license', 'licenses')} expiring within ${EXPIRING_DAYS} days`);
  if (attention > 0) parts.push(`RAS asks for attention on ${plural(attention, 'farm', 'farms')}`);
  const level = over.length > 0 || expired > 0 ? 'bad' : parts.length > 1 ? 'warn' : 'ok';
  if (parts.length === 1 && level === 'ok') parts.push('no license expired or expiring');
  return { level, parts };
}
