/**
 * What of an error reaches a log line. ioredis errors carry the command they answer, arguments
 * included: for a refused frame that is every Lua argument (user names, client addresses, 145 KB
 * lines), for a failed login the password. Only the command's name is kept, and messages are cut
 * short, whatever produced the error.
 */
const MAX_MESSAGE_CHARS = 500;

export interface LoggedError {
  type: string;
  message: string;
  code?: string;
  /** The Redis command an error answers, by name only. */
  command?: string;
  stack?: string;
  cause?: LoggedError;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`;
}

/**
 * A pino `err` serializer that keeps type, message, code, stack and cause, and no payloads: a
 * LoggedError for an Error or an object with a message, anything else as it came.
 */
export function serializeError(value: unknown, depth = 0): unknown {
  if (!(value instanceof Error)) {
    if (typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string') {
      const { message, code } = value as { message: string; code?: unknown };
      return {
        type: 'Object',
        message: clip(message, MAX_MESSAGE_CHARS),
        ...(typeof code === 'string' ? { code } : {}),
      };
    }
    return value;
  }
  const err = value as Error & { code?: unknown; command?: { name?: unknown } };
  const logged: LoggedError = {
    type: err.constructor?.name ?? 'Error',
    message: clip(String(err.message), MAX_MESSAGE_CHARS),
  };
  if (typeof err.code === 'string') logged.code = err.code;
  if (typeof err.command?.name === 'string') logged.command = err.command.name;
  if (err.stack) logged.stack = clip(err.stack, 4 * MAX_MESSAGE_CHARS);
  if (err.cause !== undefined && depth < 2) logged.cause = serializeError(err.cause, depth + 1) as LoggedError;
  return logged;
}
