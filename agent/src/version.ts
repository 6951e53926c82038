import { readFileSync } from 'node:fs';

/** The agent package's version, sent in hello as `rasmon-agent/VERSION`. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
