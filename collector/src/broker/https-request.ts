/**
 * One HTTPS request to the broker with node:https, bounded in time and size.
 *
 * node:https rather than fetch (undici): the broker's CA is a per-farm option, which node:https takes
 * per request (`ca`) while fetch needs undici's Agent as an extra dependency to do the same. The
 * certificate is always verified (`rejectUnauthorized: true`); there is no switch to turn that off.
 */
import type { ClientRequest } from 'node:http';
import { request } from 'node:https';
import { BrokerError } from './broker-error.js';

export interface HttpsTarget {
  /** The REST API's base, `https://broker:20443` (the part before `/api/`). */
  readonly base: URL;
  /** PEM of the CA(s) the broker's certificate must chain to; the system's roots when absent. */
  readonly ca?: string | Buffer | undefined;
  /** The whole request, connection to last body byte, must finish within this. */
  readonly timeoutMs: number;
  /** A body longer than this is refused (`bad_response`) as soon as it is seen to be. */
  readonly maxBodyBytes: number;
}

export interface HttpsReply {
  readonly status: number;
  readonly body: Buffer;
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EPIPE',
  'ECONNABORTED',
]);

/** Certificate checks fail with OpenSSL's names (`SELF_SIGNED_CERT_IN_CHAIN`), handshakes with ERR_SSL_/ERR_TLS_. */
function isTlsFailure(code: string): boolean {
  return /CERT|^ERR_SSL_|^ERR_TLS_|^UNABLE_TO_|SIGNATURE|^DEPTH_ZERO/.test(code);
}

function classify(err: NodeJS.ErrnoException, what: string): BrokerError {
  const code = err.code ?? '';
  if (isTlsFailure(code)) {
    return new BrokerError('tls', `${what}: the broker's certificate was refused (${code})`, { cause: err });
  }
  if (UNREACHABLE.has(code) || code === '') {
    return new BrokerError('unreachable', `${what}: broker unreachable (${code || err.message})`, { cause: err });
  }
  return new BrokerError('unreachable', `${what}: connection failed (${code})`, { cause: err });
}

/**
 * Sends one request and reads the whole answer, or fails with a {@link BrokerError}: `timeout` past
 * `timeoutMs`, `bad_response` past `maxBodyBytes` (the socket is dropped then, so an endless body is
 * never buffered), `tls` or `unreachable` from the connection.
 *
 * @param what - names the request in error messages, e.g. `GET /api/License`
 */
export function httpsRequest(
  target: HttpsTarget,
  method: 'GET' | 'POST',
  path: string,
  headers: Record<string, string>,
  what: string,
  body?: string,
): Promise<HttpsReply> {
  // A base with a path (a reverse proxy's prefix) keeps it: `/api/...` goes after it.
  const url = new URL(target.base.pathname.replace(/\/+$/, '') + path, target.base);
  const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
  return new Promise<HttpsReply>((resolve, reject) => {
    let settled = false;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    let req: ClientRequest;
    try {
      req = request(url, {
        method,
        headers: payload ? { ...headers, 'Content-Length': String(payload.length) } : headers,
        ...(target.ca !== undefined ? { ca: target.ca } : {}),
        rejectUnauthorized: true,
        // One connection per request: a poll is a handful of requests a minute, and no pooled socket
        // outlives the client.
        agent: false,
      });
    } catch (err) {
      // A ca that holds no usable certificate is refused here, before any connection.
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      reject(new BrokerError('tls', `${what}: the TLS settings were refused (${code})`, { cause: err }));
      return;
    }
    const fail = (error: BrokerError) =>
      finish(() => {
        req.destroy();
        reject(error);
      });
    const timer = setTimeout(
      () => fail(new BrokerError('timeout', `${what}: no complete answer within ${target.timeoutMs} ms`)),
      target.timeoutMs,
    );
    req.on('error', (err: NodeJS.ErrnoException) => fail(classify(err, what)));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const tooLong = () =>
        new BrokerError('bad_response', `${what}: answer larger than ${target.maxBodyBytes} bytes`, { status });
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > target.maxBodyBytes) {
        res.destroy();
        fail(tooLong());
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > target.maxBodyBytes) {
          res.destroy();
          fail(tooLong());
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err: NodeJS.ErrnoException) => fail(classify(err, what)));
      res.on('end', () => finish(() => resolve({ status, body: Buffer.concat(chunks) })));
      // A response cut off mid-body closes without 'end'.
      res.on('close', () => {
        if (!res.complete)
          fail(new BrokerError('unreachable', `${what}: the connection closed mid-answer`, { status }));
      });
    });
    req.end(payload);
  });
}
