import type { Session } from '@rasmon/protocol';

/** A valid session of user CORP\u<id>: an active RAS desktop since 1, with the fields given. */
export const session = (id: string, fields: Partial<Session> = {}): Session => ({
  id,
  user: `CORP\\u${id}`,
  admin: false,
  kind: 'desktop',
  via: 'ras',
  state: 'active',
  since: 1,
  ...fields,
});
