/**
 * The service's command line as the Service Control Manager stores it (`lpBinaryPathName`): the exe
 * and its arguments in one string, split again by the C runtime when the service starts. Quoting
 * follows the rules CommandLineToArgvW and the MSVC runtime apply, so paths with spaces, and with
 * backslashes before a quote, come back exactly.
 */
import { RasmonError } from '@rasmon/protocol/kit';
import { win32 } from 'node:path';

export class CommandLineError extends RasmonError {
  constructor(message: string) {
    super('RASMON_COMMAND_LINE', message);
    this.name = 'CommandLineError';
  }
}

/** One argument, quoted when it needs to be (empty, spaces, tabs, quotes). */
export function quoteArgument(arg: string): string {
  if (arg !== '' && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === '\\') {
      backslashes += 1;
      continue;
    }
    // Backslashes are literal unless they come before a quote: then each one is doubled.
    if (ch === '"') out += '\\'.repeat(backslashes * 2 + 1) + '"';
    else out += '\\'.repeat(backslashes) + ch;
    backslashes = 0;
  }
  // Before the closing quote, trailing backslashes are doubled too.
  return `${out}${'\\'.repeat(backslashes * 2)}"`;
}

/**
 * Splits a command line the way the MSVC runtime does for argv[1..]; argv[0] (the program) is
 * taken up to the next quote or space as CommandLineToArgvW does. Used to check the quoting round
 * trip and to read back the command line of an installed service.
 */
export function splitCommandLine(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  // The program name: no escapes, quotes only toggle.
  let program = '';
  let quoted = false;
  for (; i < line.length; i += 1) {
    const ch = line[i]!;
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === ' ' || ch === '\t')) break;
    else program += ch;
  }
  args.push(program);
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i += 1;
    if (i >= line.length) break;
    let arg = '';
    quoted = false;
    for (; i < line.length; i += 1) {
      const ch = line[i]!;
      if (ch === '\\') {
        let n = 0;
        while (line[i] === '\\') {
          n += 1;
          i += 1;
        }
        if (line[i] === '"') {
          arg += '\\'.repeat(Math.floor(n / 2));
          if (n % 2 === 1) arg += '"';
          else quoted = !quoted;
        } else {
          arg += '\\'.repeat(n);
          i -= 1;
        }
      } else if (ch === '"') {
        // `""` inside quotes is a literal quote (MSVC 2008 and later).
        if (quoted && line[i + 1] === '"') {
          arg += '"';
          i += 1;
        } else quoted = !quoted;
      } else if (!quoted && (ch === ' ' || ch === '\t')) break;
      else arg += ch;
    }
    args.push(arg);
  }
  return args;
}

/** Joins a program and its arguments into one command line; the program is always quoted. */
export function joinCommandLine(program: string, args: readonly string[]): string {
  // A program path cannot hold a quote (Windows file names cannot) and is never escaped.
  if (program.includes('"')) throw new CommandLineError(`program path ${program} contains a quote`);
  return [`"${program}"`, ...args.map(quoteArgument)].join(' ');
}

/**
 * The command line the service is registered with: `"<exe>" service run --config "<config>"`, both
 * paths absolute (the SCM starts services in %SystemRoot%\System32, so a relative path would not be
 * found there). `leadingArgs`: the script, when the agent runs as node.exe and a script rather than
 * as the exe.
 */
export function serviceCommandLine(exePath: string, configPath: string, leadingArgs: readonly string[] = []): string {
  for (const [what, path] of [
    ['the executable', exePath],
    ['the config file', configPath],
  ] as const) {
    if (!win32.isAbsolute(path) || !/^([A-Za-z]:\\|\\\\)/.test(path)) {
      throw new CommandLineError(`${what} path must be absolute (C:\\... or \\\\server\\...): ${path}`);
    }
    if (/["\0\r\n]/.test(path))
      throw new CommandLineError(`${what} path contains a quote or a control character: ${path}`);
  }
  return joinCommandLine(exePath, [...leadingArgs, 'service', 'run', '--config', configPath]);
}
