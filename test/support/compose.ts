/** docker-compose.yml as the compose tests read it. */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const COMPOSE_FILE = `${ROOT}docker-compose.yml`;

export const compose = YAML.parse(readFileSync(COMPOSE_FILE, 'utf8')) as {
  services: Record<string, { command?: string[]; volumes?: string[] }>;
};

/** The host path mounted at `target` by a service. */
export function mounted(service: string, target: string): string {
  const volume = compose.services[service]!.volumes!.find((v) => v.split(':')[1] === target)!;
  return `${ROOT}${volume.split(':')[0]!.replace(/^\.\//, '')}`;
}
