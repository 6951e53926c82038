/**
 * The agent's log: `log.format` `text` (one line a record: ISO time, level name, message, then the
 * fields as key=value) or `json` (pino's lines, with ISO times and level names instead of epoch ms
 * and numbers). Text is written by the small formatter below rather than pino-pretty: pino-pretty
 * brings a dozen packages (and a worker thread when used as a transport) for what a service's log
 * needs, which is one readable line per record, written synchronously.
 */
import { createRootLogger, type Logger } from '@rasmon/protocol/kit';
import { pino, type DestinationStream, type LevelWithSilent, type LoggerOptions } from 'pino';

export type LogFormat = 'text' | 'json';

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** Fields every line has, or that the text line shows in its own place. */
const OWN_FIELDS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'err']);

function valueText(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? 'undefined';
}

/** One pino JSON record (as pino wrote it, with ISO time and level name or number) as one text line. */
export function textLine(record: Record<string, unknown>): string {
  const level =
    typeof record.level === 'number'
      ? (LEVEL_NAMES[record.level] ?? String(record.level))
      : String(record.level).toUpperCase();
  const time =
    typeof record.time === 'number'
      ? new Date(record.time).toISOString()
      : typeof record.time === 'string'
        ? record.time
        : '';
  let line = `${time} ${level.padEnd(5)} ${typeof record.msg === 'string' ? record.msg : ''}`;
  for (const [key, value] of Object.entries(record)) {
    if (!OWN_FIELDS.has(key) && value !== undefined) line += ` ${key}=${valueText(value)}`;
  }
  const err = record.err as { type?: string; message?: string; code?: string; stack?: string } | undefined;
  if (err && typeof err === 'object') {
    line += ` err=${valueText(`${err.type ?? 'Error'}: ${err.message ?? ''}`)}`;
    if (err.code) line += ` code=${valueText(err.code)}`;
    // The stack only for what needs a developer: errors and worse.
    const levelNumber = typeof record.level === 'number' ? record.level : 0;
    if (err.stack && levelNumber >= 50) line += `\n${err.stack.replace(/^/gm, '    ')}`;
  }
  return `${line}\n`;
}

/** A destination that writes each pino record to `out` as a text line. */
export function textDestination(out: DestinationStream): DestinationStream {
  return {
    write(chunk: string) {
      let text = '';
      for (const json of chunk.split('\n')) {
        if (json === '') continue;
        try {
          text += textLine(JSON.parse(json) as Record<string, unknown>);
        } catch {
          text += `${json}\n`;
        }
      }
      out.write(text);
    },
  };
}

export interface AgentLogOptions {
  format: LogFormat;
  /** Where lines go: stdout by default. */
  destination?: DestinationStream;
  level?: LevelWithSilent | undefined;
}

/** The process's root logger in the chosen format. */
export function createAgentLogger(options: AgentLogOptions): Logger {
  const settings: LoggerOptions = {
    // ISO time and level names in JSON too: a person reads the file before a machine does.
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    ...(options.level ? { level: options.level } : {}),
  };
  if (options.format === 'json')
    return createRootLogger('rasmon-agent', settings, options.destination ?? pino.destination({ dest: 1, sync: true }));
  // Text: pino still builds JSON (its serializers and redaction apply), with numeric levels and
  // epoch-ms times that the line-writer reads back and prints as ISO and names.
  const { timestamp: _ignored, formatters: _alsoIgnored, ...plain } = settings;
  return createRootLogger(
    'rasmon-agent',
    plain,
    textDestination(options.destination ?? pino.destination({ dest: 1, sync: true })),
  );
}
