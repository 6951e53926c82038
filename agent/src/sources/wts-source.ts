/** `wts`: the bundled PowerShell script calling the WTS API, JSON out (or a saved output of it). */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Session } from '@rasmon/protocol';
import type { Classifier } from '../classify.js';
import { runCommand } from './run-command.js';
import type { SessionSource } from './source.js';
import { parseWtsOutput } from './wts-output.js';


export class WtsSource implements SessionSource {
  readonly name = 'wts';

  constructor(
    private readonly classifier: Classifier,
    /** Extra groups (names or SIDs) whose members are administrators. */
    private readonly adminGroups: readonly string[],
    private readonly inputFile?: string,
  ) {}

  async list(nowMs: number): Promise<Session[]> {
    let json: string;
    if (this.inputFile) {
      json = await readFile(this.inputFile, 'utf8');
    } else {
      const args = ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', fileURLToPath(new URL('../../scripts/wts-sessions.ps1', import.meta.url))];
      if (this.adminGroups.length > 0) args.push('-AdminGroups', this.adminGroups.join(','));
      const output = await runCommand('powershell.exe', args, { timeoutMs: 60_000 });
      if (output.code !== 0) throw new Error(`wts-sessions.ps1 exited ${output.code}: ${output.stderr.trim().slice(0, 500)}`);
      json = output.stdout;
    }
    return this.classifier.classify(parseWtsOutput(json), nowMs);
  }
}
