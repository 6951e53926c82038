/**
 * A saved `wts` reading, for `sessions --source wts --input FILE` (support cases, tests): one JSON
 * array of objects named exactly like {@link RawSession}'s fields, the facts the WTS API gives
 * before classification. This module checks it. (The format is the one the PowerShell script of
 * earlier versions printed, so its saved outputs still read.)
 */
import { formatIssue, RasmonError } from '@rasmon/protocol/kit';
import * as z from 'zod';
import type { RawSession, RawState } from './raw-session.js';

/** The saved reading breaks the contract; the whole list is refused. */
export class WtsOutputError extends RasmonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RASMON_WTS_OUTPUT', message, options);
    this.name = 'WtsOutputError';
  }
}

/** Every state, once: the compiler checks this record against RawState in both directions. */
const STATES: Record<RawState, true> = {
  active: true,
  connected: true,
  connectquery: true,
  shadow: true,
  disconnected: true,
  idle: true,
  listen: true,
  reset: true,
  down: true,
  init: true,
};

/** `null` for what Windows did not tell (no client on the console, no logon time). */
const text = z.string().nullish();

/** One session as saved. Strict: a misspelt field is a broken contract, not an extra. */
export const wtsSessionSchema = z.strictObject({
  sessionId: z.number().int().nonnegative(),
  user: z.string().refine((user) => user.trim() !== '', 'must not be blank'),
  domain: text,
  state: z.enum(Object.keys(STATES) as [RawState, ...RawState[]]),
  sessionName: text,
  logonTime: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullish(),
  clientName: text,
  clientAddress: text,
  protocolType: z.number().int().nonnegative().nullish(),
  processes: z.array(z.string()).nullish(),
  admin: z.boolean().nullish(),
});

/** A single session alone may be saved as an object (PowerShell did): read it as a list of one. */
const outputSchema = z.union([z.array(z.unknown()), z.looseObject({}).transform((one) => [one])]);

/**
 * Parses and validates a saved wts reading. `null` fields are dropped.
 *
 * @throws WtsOutputError when the text is not JSON, not a list of sessions, or a session breaks the
 *   contract; the message names the session's index and the field.
 */
export function parseWtsOutput(json: string): RawSession[] {
  const body = json.replace(/^\uFEFF/, '').trim();
  if (body === '') throw new WtsOutputError('the saved wts reading is empty (an empty host is [])');
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    throw new WtsOutputError(`the saved wts reading is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const list = outputSchema.safeParse(value);
  if (!list.success) throw new WtsOutputError('the saved wts reading is not a JSON array of sessions');
  return list.data.map((item, index) => {
    const parsed = wtsSessionSchema.safeParse(item);
    if (!parsed.success)
      throw new WtsOutputError(
        `saved wts output ${formatIssue(parsed.error, { prefix: `[${index}]`, unknownKeys: 'field' })}`,
      );
    return dropNulls(parsed.data);
  });
}

function dropNulls(session: z.infer<typeof wtsSessionSchema>): RawSession {
  const { sessionId, user, state, ...optional } = session;
  const result: RawSession = { sessionId, user, state };
  for (const [key, value] of Object.entries(optional)) {
    if (value !== null && value !== undefined) Object.assign(result, { [key]: value });
  }
  return result;
}
