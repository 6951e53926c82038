/** The flags of the collector's commands: named flags only, none unknown. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Flags = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Flags> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>['values'];

/**
 * Parses `argv` as the given flags (no positional arguments). A flag the command does not know, or
 * one missing its value, is handed to `refuse` with node's one-line message.
 */
export function parseFlags<const O extends Flags>(
  argv: string[],
  options: O,
  refuse: (message: string) => never,
): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    return refuse((err as Error).message);
  }
}
