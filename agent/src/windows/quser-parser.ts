/**
 * Reads the text tables of `query user` (`quser`) and `query session` (`qwinsta`), in English, German
 * or French, into {@link RawSession}s.
 *
 * How a row is cut into columns. The header gives each column a start offset; a column's span runs
 * from its start to the next column's start. Values are not reliably under their titles: the ID is
 * right-aligned and a five-digit listener id starts left of `ID`; a French logon time starts left of
 * `TEMPS SESSION`; widths differ between Windows builds; names can be empty. So a row is read around
 * one anchor that needs no offsets:
 *  1. The **ID** is the integer token directly followed by a known state word (if several, the one
 *     ending nearest the end of the `ID` title, under which it is right-aligned); the next token is
 *     the **state**. A row whose state word is unknown is still cut at its nearest integer, so that
 *     a userless row (an unused console) is dropped rather than failing the whole table.
 *  2. The tokens left of the ID belong to the name columns (user and session name, in the header's
 *     order): each goes to the column whose span it overlaps most, the first span open to the left
 *     and the last open to the right. An empty name simply gets no token, and a name that spills
 *     past its span still overlaps its own column most.
 *  3. Right of the state, `quser` prints the idle time (never containing a space, e.g. `.`, `none`,
 *     `1:39`, `15+15:12`) and then the logon time (which does contain spaces): the first token is
 *     the idle time unless it already looks like a date, and the rest of the line is the logon time.
 *     `qwinsta`'s TYPE and DEVICE columns are not needed.
 */
import { RasmonError } from '@rasmon/protocol/kit';
import type { RawSession, RawState } from './raw-session.js';

/** Languages whose headers are recognized; the language decides the day/month order of dates. */
export type QueryLanguage = 'en' | 'de' | 'fr';

export interface ParseQueryOptions {
  /**
   * Order of day and month in dates written with `/`. By default it follows the header's language
   * (English: month first; German, French: day first). Windows formats dates by the host's regional
   * format, not its display language, so an English host set to en-GB needs `'day-first'`.
   */
  dateOrder?: 'month-first' | 'day-first';
}

/** Output of `query user` / `query session` that cannot be read; the message says what was expected. */
export class QueryOutputError extends RasmonError {
  constructor(message: string) {
    super('RASMON_QUERY_OUTPUT', message);
    this.name = 'QueryOutputError';
  }
}

type Role = 'user' | 'session' | 'id' | 'state' | 'idle' | 'logon' | 'type' | 'device';

interface HeaderLabel {
  text: string;
  role: Role;
  /** Absent for titles shared by several languages (`ID`, `TYPE`). */
  lang?: QueryLanguage;
}

/*
 * The tables below are the only language-specific part. To add a language, add its column titles,
 * its state words and its "no user" message. Words are compared ignoring case and accents, and also
 * with accented letters dropped, because `quser` writes in the OEM code page and a reader decoding it
 * as another turns `ÉTAT` into `�TAT` or `TAT`.
 */

/** Column titles. English and German as printed by Windows Server; French as seen on real hosts. */
const HEADER_LABELS: readonly HeaderLabel[] = [
  { text: 'USERNAME', role: 'user', lang: 'en' },
  { text: 'SESSIONNAME', role: 'session', lang: 'en' },
  { text: 'ID', role: 'id' },
  { text: 'STATE', role: 'state', lang: 'en' },
  { text: 'IDLE TIME', role: 'idle', lang: 'en' },
  { text: 'LOGON TIME', role: 'logon', lang: 'en' },
  { text: 'TYPE', role: 'type' },
  { text: 'DEVICE', role: 'device', lang: 'en' },

  { text: 'BENUTZERNAME', role: 'user', lang: 'de' },
  { text: 'SITZUNGSNAME', role: 'session', lang: 'de' },
  { text: 'STATUS', role: 'state', lang: 'de' },
  { text: 'LEERLAUF', role: 'idle', lang: 'de' },
  { text: 'LEERLAUFZEIT', role: 'idle', lang: 'de' },
  { text: 'ANMELDEZEIT', role: 'logon', lang: 'de' },
  { text: 'TYP', role: 'type', lang: 'de' },
  { text: 'GERÄT', role: 'device', lang: 'de' },

  // Real French hosts print `UTILISATEUR SESSION ID ÉTAT TEMPS INACT TEMPS SESSION`; the longer forms
  // are documented variants.
  { text: 'UTILISATEUR', role: 'user', lang: 'fr' },
  { text: "NOM D'UTILISATEUR", role: 'user', lang: 'fr' },
  { text: 'SESSION', role: 'session', lang: 'fr' },
  { text: 'NOM DE SESSION', role: 'session', lang: 'fr' },
  { text: 'ÉTAT', role: 'state', lang: 'fr' },
  { text: 'TEMPS INACT', role: 'idle', lang: 'fr' },
  { text: "TEMPS D'INACT", role: 'idle', lang: 'fr' },
  { text: "TEMPS D'INACTIVITÉ", role: 'idle', lang: 'fr' },
  { text: 'TEMPS SESSION', role: 'logon', lang: 'fr' },
  { text: 'TEMPS DE SESSION', role: 'logon', lang: 'fr' },
  { text: "DATE D'OUVERTURE DE SESSION", role: 'logon', lang: 'fr' },
  { text: 'PÉRIPHÉRIQUE', role: 'device', lang: 'fr' },
];

/**
 * State words of every language, in one table: localized builds leave some states in English (a
 * Russian `qwinsta` prints `Disc` beside `Активно`), and no word means two states.
 */
const STATE_WORDS: Readonly<Record<RawState, readonly string[]>> = {
  active: ['Active', 'Aktiv', 'Actif'],
  connected: ['Conn', 'Verbunden', 'Verb.', 'Connecté'],
  connectquery: ['ConnQ'],
  shadow: ['Shadow', 'Spiegeln'],
  disconnected: ['Disc', 'Getr.', 'Getrennt', 'Déco', 'Déconnecté'],
  idle: ['Idle', 'Leerlauf', 'Inactif'],
  listen: ['Listen', 'Abhören', 'Abhör.', 'Écouter', 'Écoute'],
  reset: ['Reset', 'Zurücksetzen', 'Réinit.', 'Réinitialiser'],
  down: ['Down', 'Arrêt'],
  init: ['Init'],
};

/** What `quser` prints (to stderr, exit code 1) when nobody is logged on. */
const NO_USER = [/^No User exists for /i, /^Kein Benutzer vorhanden/i, /^Aucun utilisateur n.existe pour/i];

/** Upper case without accents, `’` as `'`, trailing dots dropped (`Getr.` = `GETR`). */
function fold(word: string): string {
  return word
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .replace(/\u2019/g, "'")
    .toUpperCase()
    .replace(/\.+$/, '');
}

/** The folded word with every letter that was accented, or undecodable, dropped (`ÉTAT`, `�TAT` → `TAT`). */
function skeleton(word: string): string {
  return fold(word.normalize('NFC').replace(/[^\x20-\x7e]/g, ''));
}

function sameWord(a: string, b: string): boolean {
  if (fold(a) === fold(b)) return true;
  const sa = skeleton(a);
  return sa.length >= 2 && sa === skeleton(b);
}

const STATE_LIST: ReadonlyArray<readonly [string, RawState]> = Object.entries(STATE_WORDS).flatMap(([state, words]) =>
  words.map((word) => [word, state as RawState] as const),
);

function stateOf(word: string | undefined): RawState | undefined {
  if (word === undefined) return undefined;
  return STATE_LIST.find(([known]) => sameWord(known, word))?.[1];
}

interface Token {
  text: string;
  start: number;
  end: number;
}

function tokenize(line: string): Token[] {
  return [...line.matchAll(/\S+/g)].map((m) => ({ text: m[0], start: m.index, end: m.index + m[0].length }));
}

interface Column {
  role: Role | undefined;
  start: number;
  end: number;
}

interface Header {
  kind: 'quser' | 'qwinsta';
  lang: QueryLanguage;
  columns: Column[];
  /** Index in `columns` of the ID column. */
  id: number;
}

const LABEL_WORDS = HEADER_LABELS.map((label) => ({ ...label, words: label.text.split(' ') })).sort(
  (a, b) => b.words.length - a.words.length,
);

/** Reads a header line into columns; undefined when it is not one (the four key columns must be there). */
function parseHeader(line: string): Header | undefined {
  const words = tokenize(line);
  const columns: Column[] = [];
  const votes = new Map<QueryLanguage, number>();
  for (let i = 0; i < words.length;) {
    // Titles can share words (`TEMPS INACT TEMPS SESSION`), so the longest title matching here wins.
    const label = LABEL_WORDS.find((l) => l.words.every((w, k) => sameWord(w, words[i + k]?.text ?? '')));
    const span = label?.words.length ?? 1;
    const first = words[i]!;
    columns.push({ role: label?.role, start: first.start, end: words[i + span - 1]!.end });
    if (label?.lang) votes.set(label.lang, (votes.get(label.lang) ?? 0) + 1);
    i += span;
  }
  const index = (role: Role) => columns.findIndex((c) => c.role === role);
  const [user, session, id, state] = [index('user'), index('session'), index('id'), index('state')];
  if (user < 0 || session < 0 || id < Math.max(user, session) || state !== id + 1) return undefined;
  let lang: QueryLanguage = 'en';
  for (const [candidate, count] of votes) if (count > (votes.get(lang) ?? 0)) lang = candidate;
  return { kind: user < session ? 'quser' : 'qwinsta', lang, columns, id };
}

const EXPECTED =
  'expected the header of `query user` (USERNAME SESSIONNAME ID STATE IDLE TIME LOGON TIME) or ' +
  '`query session` (SESSIONNAME USERNAME ID STATE TYPE DEVICE), in English, German or French';

/**
 * Parses the text of `query user` / `quser` or `query session` / `qwinsta` (told apart by the
 * header) into the sessions that have a user: services, listeners and an unused console are left
 * out. "No User exists for *" (in any known language) gives an empty list.
 *
 * @throws QueryOutputError when the text has no recognizable header, or a line under it is not a
 *   session row (for example an unknown state word).
 */
export function parseQuery(text: string, options: ParseQueryOptions = {}): RawSession[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const headerAt = lines.findIndex((line) => parseHeader(line) !== undefined);
  if (headerAt < 0) {
    if (lines.some((line) => NO_USER.some((pattern) => pattern.test(line.trim())))) return [];
    const first = lines.find((line) => line.trim() !== '')?.trim() ?? '';
    throw new QueryOutputError(
      first === ''
        ? `query output is empty: ${EXPECTED}`
        : `query output has no recognizable header: ${EXPECTED}; got "${first}"`,
    );
  }
  const header = parseHeader(lines[headerAt]!)!;
  const dayFirst = options.dateOrder ? options.dateOrder === 'day-first' : header.lang !== 'en';
  const sessions: RawSession[] = [];
  lines.slice(headerAt + 1).forEach((line, offset) => {
    if (line.trim() === '') return;
    const session = parseRow(line, header, dayFirst, headerAt + offset + 2);
    if (session) sessions.push(session);
  });
  return sessions;
}

function parseRow(line: string, header: Header, dayFirst: boolean, lineNumber: number): RawSession | undefined {
  // `>` marks the session running the query; blank it so the offsets stay.
  const tokens = tokenize(line.startsWith('>') ? ` ${line.slice(1)}` : line);
  const idEnd = header.columns[header.id]!.end;
  // Without a known state word the nearest integer is still the likeliest ID: enough to see that a
  // row has no user (an unused console in a state we cannot name) and drop it, as for any userless row.
  const known = nearestId(tokens, idEnd, (next) => stateOf(next) !== undefined);
  const at = known >= 0 ? known : nearestId(tokens, idEnd, (next) => next !== undefined);
  if (at < 0) {
    throw new QueryOutputError(
      `query output line ${lineNumber} is not a session row (no id followed by a state): "${line.trim()}"`,
    );
  }

  const nameColumns = header.columns.slice(0, header.id);
  const names = nameColumns.map(() => [] as Token[]);
  for (const token of tokens.slice(0, at)) names[closestColumn(token, nameColumns)]!.push(token);
  const textOf = (role: Role): string => {
    const found = names[nameColumns.findIndex((c) => c.role === role)] ?? [];
    return found.length === 0 ? '' : line.slice(found[0]!.start, found[found.length - 1]!.end);
  };
  const user = textOf('user');
  if (user === '') return undefined;

  const state = stateOf(tokens[at + 1]!.text);
  if (state === undefined) {
    throw new QueryOutputError(
      `query output line ${lineNumber}: unknown session state "${tokens[at + 1]!.text}" ` +
        `(known: ${STATE_LIST.map(([word]) => word).join(', ')}): "${line.trim()}"`,
    );
  }
  const session: RawSession = { sessionId: Number(tokens[at]!.text), user, state, sessionName: textOf('session') };

  if (header.kind === 'quser') {
    let rest = tokens.slice(at + 2);
    if (rest.length > 0 && !looksLikeDate(rest[0]!.text)) rest = rest.slice(1);
    if (rest.length > 0) {
      const logonText = line.slice(rest[0]!.start).trim();
      const logonTime = parseLogonTime(logonText, dayFirst);
      if (logonTime === undefined) session.logonText = logonText;
      else session.logonTime = logonTime;
    }
  }
  return session;
}

/**
 * Index of the integer token, followed by a token that `follows` accepts, ending nearest `idEnd` (the
 * ID is right-aligned under its title); -1 when there is none.
 */
function nearestId(tokens: readonly Token[], idEnd: number, follows: (next: string | undefined) => boolean): number {
  let best = -1;
  tokens.forEach((token, i) => {
    if (!/^\d{1,10}$/.test(token.text) || !follows(tokens[i + 1]?.text)) return;
    if (best < 0 || Math.abs(token.end - idEnd) < Math.abs(tokens[best]!.end - idEnd)) best = i;
  });
  return best;
}

/** The column whose span the token overlaps most; the first span is open to the left, the last to the right. */
function closestColumn(token: Token, columns: readonly Column[]): number {
  let best = 0;
  let bestOverlap = -1;
  columns.forEach((column, i) => {
    const from = i === 0 ? -Infinity : column.start;
    const to = i === columns.length - 1 ? Infinity : columns[i + 1]!.start;
    const overlap = Math.min(token.end, to) - Math.max(token.start, from);
    if (overlap > bestOverlap) [best, bestOverlap] = [i, overlap];
  });
  return best;
}

const DATE = /^\d{1,4}([./-])\d{1,2}\1\d{1,4}$/;

function looksLikeDate(word: string): boolean {
  return DATE.test(word);
}

const DATE_TIME = /^(\d{1,4})([./-])(\d{1,2})\2(\d{1,4}),?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AP])\.?M\.?)?$/i;

/**
 * A printed logon time as ms since the epoch, read in the machine's local time zone (quser prints
 * the host's local time, and the agent runs on that host); undefined when it cannot be read.
 * `YYYY-MM-DD` and `YYYY/MM/DD` are year first; a `.` date is day first (`7.9.2021`, German and
 * others); a `/` or `-` date with the year last follows `dayFirst`.
 */
export function parseLogonTime(text: string, dayFirst: boolean): number | undefined {
  const match = DATE_TIME.exec(text.trim());
  if (!match) return undefined;
  const [, a, separator, b, c, hh, mm, ss, half] = match;
  let year: number;
  let month: number;
  let day: number;
  if (a!.length === 4) [year, month, day] = [Number(a), Number(b), Number(c)];
  else if (c!.length !== 4) return undefined;
  else if (separator === '.' || dayFirst) [day, month, year] = [Number(a), Number(b), Number(c)];
  else [month, day, year] = [Number(a), Number(b), Number(c)];

  let hour = Number(hh);
  const minute = Number(mm);
  const second = ss === undefined ? 0 : Number(ss);
  if (half !== undefined) {
    if (hour < 1 || hour > 12) return undefined;
    hour = (hour % 12) + (half.toUpperCase() === 'P' ? 12 : 0);
  }
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  // setFullYear, unlike the Date constructor, takes years 0-99 as written rather than as 1900-1999.
  const date = new Date(2000, 0, 1, hour, minute, second);
  date.setFullYear(year, month - 1, day);
  // Both roll 31/2 over into March; such a date was misread, not a real logon.
  if (date.getFullYear() !== year || date.getMonth() !== month - 1 || date.getDate() !== day) return undefined;
  return date.getTime();
}
