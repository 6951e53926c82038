import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { extname } from 'node:path';
import YAML from 'yaml';
import { RasmonError } from './errors.js';

/** Configuration files are small; anything larger is a mistake (a log file given by accident, say). */
export const CONFIG_FILE_MAX_BYTES = 1_048_576;

/** A configuration file that cannot be read or parsed. The message is one line starting with the file. */
export class ConfigFileError extends RasmonError {
  /** What is wrong, without the file: `not found`, `line 3, column 1: Unexpected token`. */
  readonly reason: string;
  /** Whether the file could not be read at all (as opposed to read and found malformed). */
  readonly unreadable: boolean;

  constructor(file: string, reason: string, options: { unreadable?: boolean; cause?: unknown } = {}) {
    super('RASMON_CONFIG_FILE', `config file ${file}: ${reason}`, options);
    this.name = 'ConfigFileError';
    this.reason = reason;
    this.unreadable = options.unreadable ?? false;
  }
}

function unreadable(file: string, err: unknown): ConfigFileError {
  const code = (err as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOENT'
      ? 'not found'
      : code === 'EACCES' || code === 'EPERM'
        ? 'not readable'
        : code === 'EISDIR'
          ? 'is a directory'
          : `cannot be read (${code ?? String(err)})`;
  return new ConfigFileError(file, reason, { unreadable: true, cause: err });
}

/** Reads a regular file of at most `maxBytes` as UTF-8, without a leading byte-order mark. */
function readText(file: string, maxBytes: number): string {
  let fd: number;
  try {
    // Non-blocking, so that a FIFO given by mistake is refused below instead of waiting for a writer.
    fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (err) {
    throw unreadable(file, err);
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new ConfigFileError(file, 'is a directory', { unreadable: true });
    if (!stat.isFile()) throw new ConfigFileError(file, 'is not a regular file', { unreadable: true });
    if (stat.size > maxBytes) throw new ConfigFileError(file, `is larger than ${maxBytes} bytes`, { unreadable: true });
    // Read one byte past the limit: a file that grew since fstat is still refused.
    const buffer = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length === buffer.length) break;
    }
    if (length > maxBytes) throw new ConfigFileError(file, `is larger than ${maxBytes} bytes`, { unreadable: true });
    // Notepad saves UTF-8 with a byte-order mark, which JSON.parse refuses.
    return buffer.toString('utf8', 0, length).replace(/^\uFEFF/, '');
  } catch (err) {
    throw err instanceof ConfigFileError ? err : unreadable(file, err);
  } finally {
    closeSync(fd);
  }
}

function parseYaml(file: string, text: string): unknown {
  const doc = YAML.parseDocument(text);
  // Warnings (an unknown tag, say) silently change a value; a configuration should not pass with one.
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const firstLine = problem.message.split('\n')[0] ?? problem.message;
    const reason = firstLine.replace(/ at line \d+, column \d+:?$/, '');
    const at = problem.linePos?.[0];
    const where = at ? `line ${at.line}, column ${at.col}: ` : '';
    throw new ConfigFileError(file, `${where}${reason}`, { cause: problem });
  }
  try {
    // yaml refuses more than 100 alias expansions: a "billion laughs" file is a config error.
    return doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (err) {
    throw new ConfigFileError(file, ((err as Error).message.split('\n')[0] ?? '').slice(0, 200), { cause: err });
  }
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const message = (err as Error).message.split('\n')[0] ?? '';
    const position = /at position (\d+)/.exec(message);
    let where = '';
    if (position) {
      const before = text.slice(0, Number(position[1]));
      const line = before.split('\n').length;
      const col = before.length - before.lastIndexOf('\n');
      where = `line ${line}, column ${col}: `;
    }
    const reason = message.replace(/ in JSON at position \d+.*$/, '');
    throw new ConfigFileError(file, `${where}${reason}`, { cause: err });
  }
}

/**
 * Reads a YAML (`.yaml`, `.yml`) or JSON (`.json`) configuration file: a regular file of at most
 * `maxBytes`, a byte-order mark ignored, YAML warnings treated as errors, and a syntax error reported
 * with its line and column. Returns the parsed value (`null` for an empty YAML file); validating it is
 * the caller's schema's job.
 *
 * @throws {@link ConfigFileError} with a one-line message naming the file
 */
export function readConfigFile(file: string, options: { maxBytes?: number } = {}): unknown {
  const extension = extname(file).toLowerCase();
  if (extension !== '.yaml' && extension !== '.yml' && extension !== '.json') {
    const found = extension === '' ? 'has no extension' : `has unsupported extension "${extension}"`;
    throw new ConfigFileError(file, `${found}; must end in .yaml, .yml or .json`);
  }
  const text = readText(file, options.maxBytes ?? CONFIG_FILE_MAX_BYTES);
  return extension === '.json' ? parseJson(file, text) : parseYaml(file, text);
}
