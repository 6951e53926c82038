import type { IncomingMessage } from 'node:http';

/** The token of an `Authorization: Bearer <token>` header, if the request carries one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
}
