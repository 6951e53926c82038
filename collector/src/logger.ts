import { createRootLogger, type Logger } from '@rasmon/protocol/kit';
import type { LoggerOptions } from 'pino';

/** The collector's one root logger; what it redacts is the kit's one list (tokens, authorization, ...). */
export function createLogger(options: LoggerOptions = {}): Logger {
  return createRootLogger('rasmon-collector', options);
}

export type { Logger };
