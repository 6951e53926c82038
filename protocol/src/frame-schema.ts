import { z } from 'zod';
import { formatIssue } from './kit/zod-issue.js';
import { NAME_PATTERN } from './messages.js';

/** Text that is valid Unicode: a lone surrogate has no UTF-8 form, so Redis could not tell it apart. */
const text = (min: number, max: number) =>
  z
    .string()
    .min(min)
    .max(max)
    .refine((value) => value.isWellFormed(), 'must be valid Unicode text');

/** Milliseconds since the epoch: a non-negative safe integer. */
const millis = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

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
  user: text(1, 256).refine((user) => user.trim() !== '', 'must not be blank'),
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
