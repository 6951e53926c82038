import { pino, type Logger, type LoggerOptions } from 'pino';

/**
 * The process's one root logger. Tokens never reach a log line: the authorization header and
 * anything named like a token are redacted wherever they appear.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino({
    name: 'rasmon-collector',
    level: process.env.RASMON_LOG_LEVEL ?? 'info',
    redact: {
      paths: [
        'req.headers.authorization',
        'headers.authorization',
        'authorization',
        'token',
        '*.token',
        'tokens',
        '*.tokens',
      ],
      censor: '[redacted]',
    },
    ...options,
  });
}

export type { Logger };
