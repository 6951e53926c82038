import * as z from 'zod';
import { formatIssue } from './kit/zod-issue.js';
import { HOST_KEY_PATTERN, MAX_STATUS_ERROR_CHARS, NAME_PATTERN } from './messages.js';

/** C0 and C1 control characters and DEL: no user, host or session name, nor a status error, has them. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROL = CONTROL_CHARACTERS;

/**
 * Text that is valid Unicode (a lone surrogate has no UTF-8 form, so Redis could not tell it
 * apart) and free of control characters (a raw CR, NUL or ESC would reach /metrics, the API and
 * terminals).
 */
const text = (min: number, max: number, { trimmed = false } = {}) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((value) => value.isWellFormed(), 'must be valid Unicode text')
    .refine((value) => !CONTROL.test(trimmed ? value.trim() : value), 'must not contain control characters');

/** The largest time a JS Date holds (8.64e15 ms, +275760-09-13): anything later has no ISO form. */
export const MAX_DATE_MS = 8.64e15;

/** Milliseconds since the epoch: a non-negative integer a Date can hold. */
const millis = z.number().int().nonnegative().max(MAX_DATE_MS);

/** A sequence number: a positive safe integer. */
export const seqSchema = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

export const atSchema = millis;

export const sessionIdSchema = text(1, 128);

export const clientSchema = z.object({
  name: text(0, 256).optional(),
  address: text(0, 256).optional(),
});

/**
 * A session as an agent sends it; unknown fields are dropped. `since` is the logon time in ms since the
 * epoch and never changes for an `id`.
 */
export const sessionSchema = z.object({
  id: sessionIdSchema,
  // Whitespace around a user (a tab included) is trimmed by normalization; inside, it is refused.
  user: text(1, 256, { trimmed: true }).refine((user) => user.trim() !== '', 'must not be blank'),
  admin: z.boolean(),
  kind: z.enum(['desktop', 'app']),
  via: z.enum(['ras', 'rdp']),
  state: z.enum(['active', 'disconnected']),
  since: millis,
  client: clientSchema.optional(),
});

const name = z.string().regex(NAME_PATTERN, `must match ${NAME_PATTERN.source}`);

export const helloSchema = z.object({
  type: z.literal('hello'),
  farm: name,
  host: name,
  stream: text(1, 64),
  agent: text(1, 128).optional(),
  // The message never echoes the value: a key sent in the wrong form is still a secret.
  hostKey: z.string().regex(HOST_KEY_PATTERN, 'must be 43 base64url characters').optional(),
});

export const upsertItemSchema = z.object({
  op: z.literal('upsert'),
  at: atSchema,
  session: sessionSchema,
});

export const endItemSchema = z.object({
  op: z.literal('end'),
  at: atSchema,
  id: sessionIdSchema,
});

/** Turns the first problem zod found into one line naming the field, under `prefix` if given. */
export function describeIssue(error: z.ZodError, prefix?: string): string {
  return formatIssue(error, prefix === undefined ? {} : { prefix });
}

export const statusSchema = z.object({
  type: z.literal('status'),
  source: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be a source name'),
  ok: z.boolean(),
  error: text(0, MAX_STATUS_ERROR_CHARS).optional(),
  lastListAt: millis.optional(),
});
