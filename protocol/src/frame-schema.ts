import { z } from 'zod';
import { NAME_PATTERN } from './messages.js';

/** Milliseconds since the epoch: a non-negative safe integer. */
const millis = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A sequence number: a positive safe integer. */
export const seqSchema = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

export const atSchema = millis;

export const sessionIdSchema = z.string().min(1).max(128);

export const clientSchema = z.object({
  name: z.string().max(256).optional(),
  address: z.string().max(256).optional(),
});

/** A session as an agent sends it; unknown fields are dropped. */
export const sessionSchema = z.object({
  id: sessionIdSchema,
  user: z
    .string()
    .min(1)
    .max(256)
    .refine((user) => user.trim() !== '', 'must not be blank'),
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
  stream: z.string().min(1).max(64),
  agent: z.string().min(1).max(128).optional(),
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

/** Turns the first problem zod found into one line naming the field. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.map(String).join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}
