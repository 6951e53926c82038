/**
 * `command`: any command that prints the host's sessions as a JSON array of protocol sessions
 * (for other brokers, and for tests). Invalid entries are logged and left out.
 */
import { readFile } from 'node:fs/promises';
import { parseSession, type Session } from '@rasmon/protocol';
import type { Logger } from 'pino';
import { runCommand } from './run-command.js';
import type { SessionSource } from '../session/source.js';

export class CommandSource implements SessionSource {
  readonly name = 'command';

  constructor(
    private readonly command: string | undefined,
    private readonly log: Logger,
    private readonly inputFile?: string,
  ) {}

  async list(): Promise<Session[]> {
    let text: string;
    if (this.inputFile) {
      text = await readFile(this.inputFile, 'utf8');
    } else {
      if (!this.command) throw new Error('the command source needs `command` in the configuration');
      const output = await runCommand(this.command, [], { shell: true });
      if (output.code !== 0) throw new Error(`command exited ${output.code}: ${output.stderr.trim().slice(0, 500)}`);
      text = output.stdout;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new Error('the command did not print JSON');
    }
    if (!Array.isArray(raw)) throw new Error('the command must print a JSON array of sessions');
    const sessions: Session[] = [];
    raw.forEach((item, index) => {
      const parsed = parseSession(item);
      if ('reason' in parsed)
        this.log.warn({ index, reason: parsed.reason }, 'command printed an invalid session: left out');
      else sessions.push(parsed.session);
    });
    return sessions;
  }
}
