import { readFileSync } from 'node:fs';

/** The collector package's version, for rasmon_collector_build_info and --version. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
