/** `quser`: parses `query user` output (or a saved `query user` / `query session` text). */
import { readFile } from 'node:fs/promises';
import type { Session } from '@rasmon/protocol';
import type { Classifier } from './classify.js';
import { WindowsOnlyError } from './windows-only.js';
import { parseQuery, type ParseQueryOptions } from './quser-parser.js';
import { runCommand } from '../command/run-command.js';
import type { SessionSource } from '../session/source.js';

export class QuserSource implements SessionSource {
  readonly name = 'quser';

  constructor(
    private readonly classifier: Classifier,
    private readonly options: ParseQueryOptions = {},
    /** Read this saved output instead of running `quser`. */
    private readonly inputFile?: string,
  ) {}

  resume(previous: readonly Session[]): void {
    this.classifier.resume(previous);
  }

  async list(nowMs: number): Promise<Session[]> {
    let text: string;
    if (!this.inputFile && process.platform !== 'win32') throw new WindowsOnlyError('quser');
    if (this.inputFile) {
      text = await readFile(this.inputFile, 'utf8');
    } else {
      // quser writes in the console's OEM code page; switching it to UTF-8 keeps names such as
      // k.schröder the same as the wts source reports them.
      const output =
        process.platform === 'win32'
          ? await runCommand('chcp 65001 >NUL & quser', [], { shell: true })
          : await runCommand('quser', []);
      // With no sessions quser prints "No User exists for *" to stderr and exits 1.
      text = output.code === 0 ? output.stdout : `${output.stdout}\n${output.stderr}`;
    }
    return this.classifier.classify(parseQuery(text, this.options), nowMs);
  }
}
