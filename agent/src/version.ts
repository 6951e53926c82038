import { readFileSync } from 'node:fs';

/** Set by the exe build (esbuild `define`), where there is no package.json beside the code. */
declare const RASMON_AGENT_VERSION: string | undefined;

/** The agent package's version, sent in hello as `rasmon-agent/VERSION`. */
export const VERSION: string =
  typeof RASMON_AGENT_VERSION === 'string'
    ? RASMON_AGENT_VERSION
    : (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
