// rasmon status page: plain JavaScript modules, no build step. Reads the collector's JSON API every
// second; when the API asks for a token, prompts for one and sends it as a bearer token.
import {
  DAY_MS,
  EXPIRING_DAYS,
  bySeverity,
  duration,
  forecastText,
  headline,
  overSeats,
  utcTime,
  whenText,
} from './status.js';
import { TERMS, explain } from './terms.js';

const REFRESH_MS = 1000;
const SLOW_REFRESH_MS = 30000;
const TOKEN_KEY = 'rasmon.apiToken';
/** Users over the limit listed before the rest folds away. */
const LIST_FOLD = 10;

const state = { token: sessionStorage.getItem(TOKEN_KEY) || '', timer: 0, slow: {}, route: '' };

class Unauthorized extends Error {}

/** Builds an element; children are nodes or strings (always text, never HTML). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (key === 'style') Object.assign(el.style, value);
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children.flat(Infinity))
    if (child) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

async function api(path, accept) {
  const headers = { Accept: accept || 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const res = await fetch(path, { headers, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized('token required');
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = (await res.json()).error || message;
    } catch {
      // not JSON
    }
    throw new Error(message);
  }
  return accept === 'text/csv' ? res.text() : res.json();
}

// ---- formatting -----------------------------------------------------------------------------

/** A state in words with its colour; `title` explains it on hover. */
function tag(kind, text, title) {
  return h('span', { class: `tag ${kind}`, title }, text);
}

/** A RAS word with its one-line explanation on hover and, for assistive technology, the glossary's line. */
function term(key, text) {
  return h('span', { class: 'term', title: explain(key), 'aria-describedby': `term-${key}` }, text);
}

/** The forecast line, or null when the farm has none (the API's `forecast` null or absent). */
function forecastLine(farm, id) {
  const text = forecastText(farm.forecast, Date.now());
  return text ? h('div', { class: 'forecast', id, title: explain('forecast') }, text) : null;
}

function usersCell(farm) {
  const unverified =
    farm.unverifiedUsers > 0 ? h('div', {}, term('unverified', `${farm.unverifiedUsers} unverified`)) : null;
  if (farm.seats === null)
    return [
      h('span', { class: 'usage' }, `${farm.users} users`),
      ' ',
      h('span', { class: 'muted' }, '(no seat cap)'),
      unverified,
    ];
  const ratio = farm.seats > 0 ? Math.min(1, farm.users / farm.seats) : farm.users > 0 ? 1 : 0;
  const over = farm.users > farm.seats;
  return [
    h('span', { class: 'usage' }, `${farm.users} / ${farm.seats}`),
    ' ',
    h('span', { class: 'muted' }, farm.seats > 0 ? `(${Math.round((farm.users / farm.seats) * 100)} %)` : ''),
    h(
      'div',
      { class: over ? 'bar over' : 'bar', role: 'img', 'aria-label': `${farm.users} users of ${farm.seats} seats` },
      h('span', { style: { width: `${(ratio * 100).toFixed(1)}%` } }),
    ),
    unverified,
    forecastLine(farm),
  ];
}

function overuseCell(farm) {
  if (farm.seats === null) return tag('ok', 'no overuse (SPLA, billed by peak)', explain('spla'));
  if (farm.overuseUsers > 0) return tag('bad', `OVER by ${farm.overuseUsers}`, explain('overuse'));
  return tag('ok', 'within seats');
}

/** When the overuse grace runs out, in UTC and the viewer's time, while it counts down; else null. */
function graceWhen(farm) {
  const grace = farm.overuseGrace;
  if (!grace.started || grace.exhausted || !grace.endsAt) return null;
  const when = whenText(Date.parse(grace.endsAt), Date.now());
  return overSeats(farm) ? `deactivates ${when} if still over` : `grace ends ${when}`;
}

/** The overuse grace's state in words: not started, the time left, or used up. */
function graceState(farm) {
  const grace = farm.overuseGrace;
  if (!grace.started) return h('span', {}, 'not started');
  if (farm.deactivationRisk) return tag('bad', 'EXHAUSTED: deactivation risk', explain('deactivation'));
  if (grace.exhausted) return tag('warn', 'exhausted', explain('overuseGrace'));
  return tag('warn', `${duration(Date.parse(grace.endsAt) - Date.now())} left`, explain('overuseGrace'));
}

/** The grace's state and, beside a countdown, the moment it runs out. */
function graceCell(farm) {
  const when = graceWhen(farm);
  if (!when) return graceState(farm);
  const title = explain(overSeats(farm) ? 'deactivation' : 'overuseGrace');
  return [graceState(farm), ' ', h('span', { class: 'when', title }, when)];
}

function licenseCell(farm) {
  const now = Date.now();
  const toExpiry = Date.parse(farm.expires) - now;
  const kind =
    farm.license === 'sublicense'
      ? [' ', term('sublicense', 'sublicense')]
      : farm.license === 'spla'
        ? [' ', term('spla', 'SPLA')]
        : null;
  if (farm.state === 'active') {
    const days = Math.floor(toExpiry / DAY_MS);
    return [tag(days < EXPIRING_DAYS ? 'warn' : 'ok', 'active'), ` ${days} days to expiry`, kind];
  }
  if (farm.state === 'grace')
    return [
      tag('warn', 'expiry grace', explain('expiryGrace')),
      ` ends in ${duration(Date.parse(farm.graceEnd) - now)}`,
      kind,
    ];
  if (farm.state === 'expired') return [tag('bad', 'EXPIRED'), kind];
  // A farm adopting its license from RAS before RAS first answered has none yet.
  return h('span', { class: 'muted' }, 'not known yet (waiting for RAS)');
}

function hostStatus(host) {
  if (host.retired) return 'retired';
  if (host.up) return 'up';
  if (host.expected && !host.lastSeen) return 'expected';
  return 'stale';
}

function hostCounts(hosts) {
  const counts = { up: 0, stale: 0, retired: 0, expected: 0 };
  for (const host of hosts) counts[hostStatus(host)] += 1;
  return counts;
}

function hostsText(counts) {
  const parts = [`${counts.up} up`, `${counts.stale} stale`, `${counts.retired} retired`];
  if (counts.expected > 0) parts.push(`${counts.expected} expected, not reporting`);
  return parts.join(', ');
}

/**
 * A table cell: its column's name (shown only when the table stacks on a narrow window) and its value
 * in one box, so that the value's parts stay together beside the name.
 */
function cell(label, content, cls) {
  return h(
    'td',
    { 'data-label': label, class: cls },
    h('span', { class: 'cell-label' }, label),
    h('div', { class: 'cell-value' }, content),
  );
}

/** A column heading, with the RAS word's explanation when it is one. */
function column(text, key, cls) {
  return h(
    'th',
    {
      scope: 'col',
      class: cls,
      title: key ? explain(key) : undefined,
      'aria-describedby': key ? `term-${key}` : undefined,
    },
    text,
  );
}

/** The glossary under a page: each RAS word the page uses, in one line. */
function glossary() {
  return h(
    'section',
    { 'aria-labelledby': 'terms-title', class: 'terms' },
    h('h3', { id: 'terms-title' }, 'What the terms mean'),
    h(
      'dl',
      { id: 'terms' },
      Object.entries(TERMS).map(([key, [name, line]]) => [h('dt', {}, name), h('dd', { id: `term-${key}` }, line)]),
    ),
  );
}

// ---- the RAS broker ------------------------------------------------------------------------

const BROKER_SOURCES = { vdi: 'VDI', pc: 'PC', avd: 'AVD' };

/** The source of a broker pseudo-host (`broker/vdi`, ...), or null for an agent's host. */
function brokerSource(host) {
  const match = /^broker\/(.+)$/.exec(host.host);
  return match ? match[1] : null;
}

function sourceName(source) {
  return BROKER_SOURCES[source] || source.toUpperCase();
}

const REASONS = {
  unreachable: 'unreachable',
  tls: 'certificate or TLS refused',
  auth: 'logon refused',
  timeout: 'no answer in time',
  bad_response: 'an answer rasmon cannot read',
};

/** "answers" or "not answering since <last answer>", with the reason, as words. */
function brokerState(broker) {
  if (broker.up) return [tag('ok', 'RAS broker answers'), ` last answer ${utcTime(broker.lastAnswerAt)}`];
  const since = broker.lastAnswerAt ? `since ${utcTime(broker.lastAnswerAt)}` : '(never answered)';
  const why = broker.reason ? `: ${REASONS[broker.reason] || broker.reason}` : '';
  return [tag('bad', 'RAS broker not answering'), ` ${since}${why}`];
}

function brokerSessionsText(broker) {
  const parts = Object.entries(broker.sessions).map(([source, n]) => `${sourceName(source)} ${n}`);
  return parts.length ? parts.join(', ') : 'none yet';
}

/** RAS's alert, worded prominently: it is RAS telling an administrator to act on its license. */
function brokerAttention(farm) {
  const broker = farm.broker;
  if (!broker || !broker.needsAttention) return null;
  return h(
    'div',
    { class: 'attention', 'data-farm': farm.id },
    h('strong', {}, 'RAS needs attention (', h('a', { href: `#/farm/${encodeURIComponent(farm.id)}` }, farm.id), '): '),
    broker.alertMessage || broker.statusMessage || 'RAS flags its license but gives no message.',
  );
}

/**
 * The farm page's RAS section: the broker's state, RAS's figures beside rasmon's, the sessions
 * imported, and where the seats, license and expiry come from. Nothing for a farm without a broker.
 */
function brokerSection(farm) {
  const broker = farm.broker;
  if (!broker) return [];
  const fromRas = farm.licenseFrom === 'ras';
  return h(
    'section',
    { id: 'ras', 'aria-labelledby': 'broker-title' },
    h('h3', { id: 'broker-title' }, 'RAS broker'),
    brokerAttention(farm),
    h('p', { id: 'broker-state' }, brokerState(broker)),
    broker.up || !broker.message ? null : h('p', { class: 'muted', id: 'broker-message' }, broker.message),
    // RAS's own status line, unless the alert box above already shows it.
    broker.statusMessage && !(broker.needsAttention && !broker.alertMessage)
      ? h('p', { id: 'broker-status-message' }, `RAS says: ${broker.statusMessage}`)
      : null,
    h(
      'div',
      { class: 'cards', id: 'broker' },
      card('RAS counts / rasmon', broker.text, 'card-ras-users'),
      card('RAS seats', broker.seats === null ? '-' : String(broker.seats), 'card-ras-seats'),
      card('RAS peak', broker.peakUsers === null ? '-' : String(broker.peakUsers), 'card-ras-peak'),
      card('RAS license expiry', broker.expiryDate || '-', 'card-ras-expiry'),
      broker.graceState
        ? card(
            'RAS grace',
            `${broker.graceState}${broker.graceDaysLeft === null ? '' : `, ${broker.graceDaysLeft} days left`}`,
            'card-ras-grace',
          )
        : null,
      card('Sessions imported', brokerSessionsText(broker), 'card-ras-sessions'),
    ),
    broker.sessionsSkipped || broker.sessionsRejected || broker.unmappedUpns
      ? h(
          'p',
          { class: 'muted', id: 'broker-set-aside' },
          `Not imported: ${broker.sessionsSkipped} skipped (another source, no logged-on user), ` +
            `${broker.sessionsRejected} unreadable, ${broker.unmappedUpns} with a UPN domain ras.upnDomains does not map.`,
        )
      : null,
    h(
      'p',
      { id: 'license-from' },
      fromRas
        ? 'Seats, license type and expiry come from RAS (ras.adopt), not from the configuration.'
        : 'Seats, license type and expiry come from the configuration.',
    ),
    fromRas && farm.configDisagrees.length > 0
      ? [
          h('p', {}, 'The configuration says otherwise (RAS is followed; update the configuration):'),
          h(
            'ul',
            { id: 'config-disagrees' },
            farm.configDisagrees.map((d) =>
              h('li', {}, `${d.field}: configured ${d.configured ?? '-'}, RAS ${d.ras ?? '-'}`),
            ),
          ),
        ]
      : null,
  );
}

/** The overview's line under a farm's users: RAS's count beside rasmon's, and the broker if it fails. */
function brokerLine(farm) {
  const broker = farm.broker;
  if (!broker) return null;
  return h(
    'div',
    { class: 'ras' },
    broker.text,
    broker.up ? null : [' ', tag('bad', 'broker not answering')],
    broker.needsAttention ? [' ', tag('bad', 'RAS needs attention')] : null,
  );
}

/**
 * The session source of a host, by name with its health in words and colour: an agent's source
 * (working, or failing with its error) or, for a broker's pseudo-host, the RAS broker answering or not.
 */
function sourceCell(host, farm) {
  const source = brokerSource(host);
  if (source) {
    const up = farm.broker ? farm.broker.up : false;
    return [
      `RAS broker (${sourceName(source)} sessions)`,
      ' ',
      up ? tag('ok', 'answers') : tag('bad', 'not answering'),
    ];
  }
  if (!host.source) return h('span', { class: 'muted', title: 'the agent has sent no status of its source' }, '-');
  if (host.source.ok && !host.sourceError)
    return [
      h('span', { class: 'source-name' }, host.source.name),
      ' ',
      tag('ok', 'working'),
      host.source.lastListAt ? h('div', { class: 'muted' }, `last list ${utcTime(host.source.lastListAt)}`) : null,
    ];
  return [
    h('span', { class: 'source-name' }, host.source.name),
    ' ',
    tag('bad', 'failing'),
    host.sourceError ? h('div', { class: 'source-error' }, host.sourceError) : null,
  ];
}

// ---- views ----------------------------------------------------------------------------------

/** The overview's opening line: what is wrong across the farms, or that nothing is. */
function headlineLine(farms) {
  const { level, parts } = headline(farms, Date.now());
  return h(
    'p',
    { id: 'headline', class: `headline ${level}` },
    parts.map((part, i) => [i > 0 ? ' · ' : null, h('span', { class: 'part' }, part)]),
  );
}

async function overview() {
  const data = await api('/api/v1/farms');
  const farms = bySeverity(data.farms, Date.now());
  const rows = farms.map((farm) => {
    const counts = farm.hosts ? hostCounts(farm.hosts) : null;
    return h(
      'tr',
      { 'data-farm': farm.id },
      cell('Farm', [
        h('a', { href: `#/farm/${encodeURIComponent(farm.id)}` }, farm.id),
        farm.licenseKey ? h('div', { class: 'muted' }, `key: ${farm.licenseKey}`) : null,
      ]),
      cell('Users / seats', [...usersCell(farm), brokerLine(farm)]),
      cell('Overuse', overuseCell(farm)),
      cell('Overuse grace', graceCell(farm)),
      cell('License', licenseCell(farm)),
      cell(
        'Hosts',
        counts
          ? hostsText(counts)
          : hostsText({
              up: farm.hostsUp,
              stale: farm.hostsStale,
              retired: farm.hostsRetired,
              expected: farm.hostsExpected,
            }),
      ),
      cell('Peak today', String(farm.peakUsersToday), 'num'),
    );
  });
  return [
    headlineLine(farms),
    h('h2', {}, 'Farms'),
    farms.map(brokerAttention).filter(Boolean),
    h(
      'table',
      { class: 'stack', id: 'farms' },
      h(
        'caption',
        {},
        `${farms.length} farm(s), the most urgent first. Select a farm for its hosts, users over the limit and history.`,
      ),
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          column('Farm'),
          column('Users / seats', 'seats'),
          column('Overuse', 'overuse'),
          column('Overuse grace', 'overuseGrace'),
          column('License', 'expiryGrace'),
          column('Hosts', 'hostStates'),
          column('Peak today', 'peakToday', 'num'),
        ),
      ),
      h('tbody', {}, rows),
    ),
    glossary(),
  ];
}

/** A figure of the farm page: its name, its value and, below, a line that explains it. */
function card(label, value, id, ...detail) {
  return h(
    'div',
    { class: 'card', id },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value),
    detail.filter(Boolean).map((line) => h('div', { class: 'detail' }, line)),
  );
}

/** The words of cell content (nodes and strings), for a card's value. */
function textOf(content) {
  return []
    .concat(content)
    .flat(Infinity)
    .map((n) => (n instanceof Node ? n.textContent : (n ?? '')))
    .join('');
}

/** A list of users: the first LIST_FOLD, then the rest behind "and N more". */
function userList(users, id, labelledBy) {
  const first = h(
    'ol',
    { id, class: 'over-list', 'aria-labelledby': labelledBy },
    users.slice(0, LIST_FOLD).map((user) => h('li', {}, user)),
  );
  if (users.length <= LIST_FOLD) return first;
  return [
    first,
    h(
      'details',
      { id: `${id}-more`, class: 'fold' },
      h('summary', { id: `${id}-more-summary` }, `and ${users.length - LIST_FOLD} more`),
      h(
        'ol',
        { class: 'over-list', start: LIST_FOLD + 1, 'aria-labelledby': labelledBy },
        users.slice(LIST_FOLD).map((user) => h('li', {}, user)),
      ),
    ),
  ];
}

function chart(history, farm) {
  const days = history.days;
  if (days.length === 0) return h('p', { class: 'muted' }, 'No daily peaks recorded yet.');
  const width = 800;
  const height = 200;
  const pad = { left: 34, right: 8, top: 10, bottom: 22 };
  const top = Math.max(1, ...days.map((d) => d.peakUsers), ...days.map((d) => d.seats || 0));
  const first = Date.parse(days[0].day);
  const span = Math.max(1, (Date.parse(days[days.length - 1].day) - first) / DAY_MS + 1);
  const slot = (width - pad.left - pad.right) / span;
  const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / top);
  const x = (day) => pad.left + ((Date.parse(day) - first) / DAY_MS) * slot;
  const barWidth = Math.max(1, Math.min(24, slot * 0.8));
  const bars = days.map((d) =>
    svg(
      'rect',
      {
        class: d.seats !== null && d.peakUsers > d.seats ? 'peak over' : 'peak',
        x: x(d.day) + (slot - barWidth) / 2,
        y: y(d.peakUsers),
        width: barWidth,
        height: y(0) - y(d.peakUsers),
      },
      svg('title', {}, `${d.day}: peak ${d.peakUsers}${d.seats !== null ? ` of ${d.seats} seats` : ''}`),
    ),
  );
  let seatsPath = '';
  for (const d of days) {
    if (d.seats === null) continue;
    const x0 = x(d.day);
    seatsPath += `${seatsPath ? 'L' : 'M'}${x0},${y(d.seats)}L${x0 + slot},${y(d.seats)}`;
  }
  if (!seatsPath && farm.seats !== null)
    seatsPath = `M${pad.left},${y(farm.seats)}L${width - pad.right},${y(farm.seats)}`;
  const labels = [
    svg('text', { x: 2, y: y(top) + 4 }, String(top)),
    svg('text', { x: 2, y: y(0) }, '0'),
    svg('text', { x: pad.left, y: height - 6 }, days[0].day),
    svg('text', { x: width - pad.right - 70, y: height - 6 }, days[days.length - 1].day),
  ];
  return h(
    'figure',
    {},
    svg(
      'svg',
      { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': 'chart-title' },
      svg(
        'title',
        { id: 'chart-title' },
        `Daily peak users of ${farm.id} from ${days[0].day} to ${days[days.length - 1].day}, with the seats as a dashed line`,
      ),
      bars,
      seatsPath ? svg('path', { class: 'seats', d: seatsPath }) : null,
      labels,
    ),
    h(
      'figcaption',
      { class: 'legend' },
      'Bars: daily peak users (UTC days; red where above the seats). Dashed line: seats.',
    ),
    h(
      'details',
      { id: 'peaks-table' },
      h('summary', { id: 'peaks-table-summary' }, 'Daily peaks as a table'),
      h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ['Day', 'Peak users', 'Seats', 'Highest overuse', 'Admissions', 'Minutes over seats'].map((t) =>
              h('th', { scope: 'col' }, t),
            ),
          ),
        ),
        h(
          'tbody',
          {},
          days
            .slice()
            .reverse()
            .map((d) =>
              h(
                'tr',
                {},
                [
                  d.day,
                  d.peakUsers,
                  d.seats ?? '-',
                  d.maxOveruse ?? '-',
                  d.admissions ?? '-',
                  d.minutesOverSeats ?? '-',
                ].map((v) => h('td', {}, String(v))),
              ),
            ),
        ),
      ),
    ),
  );
}

function monthPeriod() {
  const today = new Date().toISOString().slice(0, 10);
  return { from: `${today.slice(0, 8)}01`, to: today };
}

async function download(path, filename) {
  const text = await api(path, 'text/csv');
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const link = h('a', { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function slow(key, load) {
  const entry = state.slow[key];
  if (entry && Date.now() - entry.at < SLOW_REFRESH_MS) return entry.value;
  const value = await load();
  state.slow[key] = { at: Date.now(), value };
  return value;
}

async function farmPage(id) {
  const period = monthPeriod();
  const path = `/api/v1/farms/${encodeURIComponent(id)}`;
  const [farm, history, report] = await Promise.all([
    api(path),
    slow(`history:${id}`, () => api(`${path}/history`)),
    slow(`report:${period.from}`, () => api(`/api/v1/report?from=${period.from}&to=${period.to}`)),
  ]);
  // Agents' hosts, as the overview and /metrics count them: the broker's sources are RAS's section.
  const counts = hostCounts(farm.hosts.filter((host) => !brokerSource(host)));
  // Every exempt admin desktop (the document pages its connections; this list it gives whole).
  const exempt = farm.exempt ?? farm.connections.filter((c) => c.exempt);
  const mine = report.farms.find((f) => f.farm === farm.id);
  // The agents' hosts by name, then the broker's pseudo-hosts.
  const order = (host) => `${brokerSource(host) ? 1 : 0}${host.host}`;
  const hosts = farm.hosts.slice().sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
  const hostRows = hosts.map((host) => {
    const source = brokerSource(host);
    return h(
      'tr',
      { 'data-host': host.host },
      cell('Host', source ? `RAS broker: ${sourceName(source)}` : host.host),
      cell('Status', tag(host.up ? 'ok' : host.retired ? 'warn' : 'bad', hostStatus(host))),
      cell('Connections', String(host.connections), 'num'),
      cell('Last seen', utcTime(host.lastSeen)),
      cell('Agent', source ? 'none (imported from RAS)' : host.agent || '-'),
      cell('Session source', sourceCell(host, farm)),
    );
  });
  const csvName = `rasmon-report-${period.from}-${period.to}.csv`;
  return [
    h('p', {}, h('a', { href: '#/' }, '← All farms')),
    h('h2', {}, `Farm ${farm.id}`),
    h(
      'div',
      { class: 'cards' },
      card(
        'Users / seats',
        farm.seats === null ? `${farm.users} (no cap)` : `${farm.users} / ${farm.seats}`,
        'card-users',
        farm.unverifiedUsers > 0 ? term('unverified', `${farm.unverifiedUsers} unverified`) : null,
        forecastLine(farm, 'forecast'),
      ),
      card(
        'Overuse',
        farm.seats === null ? 'none (SPLA)' : farm.overuseUsers > 0 ? `OVER by ${farm.overuseUsers}` : 'within seats',
        'card-overuse',
      ),
      card('Overuse grace', textOf(graceState(farm)), 'card-grace', graceWhen(farm)),
      card('License', textOf(licenseCell(farm)), 'card-license'),
      card('Hosts', hostsText(counts), 'card-hosts'),
      card('Peak today / ever', `${farm.peakUsersToday} / ${farm.peakUsers}`, 'card-peak'),
    ),
    brokerSection(farm),
    h('h3', { id: 'over-title' }, 'Users over the limit'),
    farm.overLimit.length === 0
      ? h('p', { id: 'over-limit', class: 'muted' }, 'None: every user in use has a seat.')
      : [
          h(
            'p',
            {},
            `${farm.overLimit.length} user(s) above the ${farm.seats} seats, the most recent to start using a license (the ones RAS would have made wait), oldest first:`,
          ),
          userList(farm.overLimit, 'over-limit', 'over-title'),
        ],
    h('h3', { id: 'hosts-title' }, 'Hosts'),
    h(
      'table',
      { class: 'stack', id: 'hosts' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          column('Host'),
          column('Status', 'hostStates'),
          column('Connections', undefined, 'num'),
          column('Last seen'),
          column('Agent'),
          column('Session source', 'sessionSource'),
        ),
      ),
      h('tbody', {}, hostRows.length ? hostRows : h('tr', {}, h('td', { colspan: 6 }, 'No host has reported yet.'))),
    ),
    h('h3', {}, term('exempt', 'Exempt admin desktops')),
    exempt.length === 0
      ? h('p', { class: 'muted' }, 'None: no administrator desktop is exempt now (at most two per host are).')
      : h(
          'table',
          { class: 'stack', id: 'exempt' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Host', 'User', 'Kind', 'Since'].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          h(
            'tbody',
            {},
            exempt.map((c) =>
              h(
                'tr',
                {},
                cell('Host', c.host),
                cell('User', c.user),
                cell('Kind', `${c.via} ${c.kind}`),
                cell('Since', utcTime(c.since)),
              ),
            ),
          ),
        ),
    h('h3', {}, 'Daily peaks'),
    chart(history, farm),
    h('h3', {}, `This month (${period.from} to ${period.to})`),
    mine
      ? h(
          'table',
          { class: 'stack', id: 'month' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              [
                'Peak users',
                'Peak day',
                'Days over seats',
                'Minutes over seats',
                'Admissions',
                'Highest overuse',
                'Billed users',
              ].map((t) => h('th', { scope: 'col' }, t)),
            ),
          ),
          h(
            'tbody',
            {},
            h(
              'tr',
              {},
              cell('Peak users', String(mine.peakUsers)),
              cell('Peak day', mine.peakDay || '-'),
              cell('Days over seats', String(mine.daysOverSeats)),
              cell('Minutes over seats', String(mine.minutesOverSeats)),
              cell('Admissions', String(mine.admissions)),
              cell('Highest overuse', String(mine.maxOveruse)),
              cell('Billed users', mine.billedUsers === null ? '-' : String(mine.billedUsers)),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No report for this farm.'),
    h(
      'div',
      { class: 'actions' },
      h(
        'button',
        {
          type: 'button',
          id: 'download-report',
          onclick: () =>
            download(`/api/v1/report?from=${period.from}&to=${period.to}&format=csv`, csvName).catch(showError),
        },
        'Download this month’s report (CSV)',
      ),
      h(
        'button',
        {
          type: 'button',
          id: 'download-history',
          onclick: () => download(`${path}/history?format=csv`, `rasmon-history-${farm.id}.csv`).catch(showError),
        },
        'Download the daily history (CSV)',
      ),
    ),
    glossary(),
  ];
}

// ---- loop -----------------------------------------------------------------------------------

function showLogin(message) {
  document.getElementById('login').hidden = false;
  document.getElementById('view').replaceChildren();
  document.getElementById('login-error').textContent = message || '';
  document.getElementById('forget').hidden = true;
  setLive('Token required', true);
  document.getElementById('token').focus();
}

function setLive(text, bad) {
  const live = document.getElementById('live');
  live.textContent = text;
  live.classList.toggle('stale', Boolean(bad));
}

function showError(err) {
  setLive(`Cannot read the collector: ${err.message}`, true);
}

function routeOf() {
  const match = /^#\/farm\/(.+)$/.exec(location.hash);
  return match ? { farm: decodeURIComponent(match[1]) } : {};
}

/** Keeps the focused control (by id) and the open folds across a re-render, so the keyboard is not thrown off. */
function render(nodes) {
  const view = document.getElementById('view');
  const focused = document.activeElement && view.contains(document.activeElement) ? document.activeElement : null;
  const focusKey = focused ? focused.id || focused.getAttribute('href') : null;
  // A fold the reader opened stays open (each <details> has an id).
  const open = [...view.querySelectorAll('details[open]')].map((d) => d.id);
  view.replaceChildren(
    ...[]
      .concat(nodes)
      .flat(Infinity)
      .filter((node) => node !== null && node !== undefined),
  );
  for (const id of open) if (id) document.getElementById(id)?.setAttribute('open', '');
  if (focusKey) {
    const again = view.querySelector(`[id="${CSS.escape(focusKey)}"], [href="${CSS.escape(focusKey)}"]`);
    if (again) again.focus();
  }
}

async function refresh() {
  clearTimeout(state.timer);
  const route = routeOf();
  try {
    const nodes = route.farm ? await farmPage(route.farm) : await overview();
    if (JSON.stringify(routeOf()) !== JSON.stringify(route)) return;
    document.getElementById('login').hidden = true;
    document.getElementById('forget').hidden = !state.token;
    render(nodes);
    document.title = route.farm ? `rasmon: ${route.farm}` : 'rasmon: license status';
    setLive(`Live, updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (err instanceof Unauthorized) {
      showLogin(state.token ? 'That token was not accepted.' : '');
      return;
    }
    showError(err);
  } finally {
    if (document.getElementById('login').hidden) state.timer = setTimeout(refresh, REFRESH_MS);
  }
}

document.getElementById('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  state.token = document.getElementById('token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  document.getElementById('token').value = '';
  state.slow = {};
  refresh();
});

document.getElementById('forget').addEventListener('click', () => {
  state.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  state.slow = {};
  refresh();
});

window.addEventListener('hashchange', () => {
  state.slow = {};
  document.getElementById('main').focus();
  refresh();
});

refresh();
