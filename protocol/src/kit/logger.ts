import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { serializeError } from './log-serializers.js';

/**
 * What never reaches a log line, wherever it appears in a logged object: tokens, authorization
 * headers, passwords, secrets and agents' host keys. One list for every rasmon process.
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'token',
  '*.token',
  'tokens',
  '*.tokens',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'hostKey',
  '*.hostKey',
]);

/**
 * The process's one root logger (pino JSON lines). Modules take `log.child({ module })`. Errors go
 * under `err`, where `serializeError` keeps their type, message, stack, `code` and `cause` chain,
 * and drops the Redis command arguments they may carry.
 * `RASMON_LOG_LEVEL` sets the level unless `options.level` does.
 */
export function createRootLogger(name: string, options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const settings: LoggerOptions = {
    name,
    level: process.env.RASMON_LOG_LEVEL ?? 'info',
    serializers: { err: serializeError },
    ...options,
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
  };
  return destination === undefined ? pino(settings) : pino(settings, destination);
}

export type { Logger };
