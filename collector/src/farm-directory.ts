/**
 * The farms of the running configuration, and the one place that answers "which farm is this and
 * what may it do": lookup by id (case-insensitive, like the hello), by the sha256 of an agent token,
 * the farm's license rules for the scripts, and whether it allows a host name (patterns compiled
 * once). A reload replaces the whole directory; nothing holds on to an old farm.
 */
import type { FarmConfig } from './config.js';
import type { FarmRules } from './license-engine.js';

/** The one case rule for farm ids: they compare case-insensitively. */
function idKey(id: string): string {
  return id.toLowerCase();
}

/** `rdsh-*` → /^rdsh-.*$/i: `*` any run of characters, `?` one; the rest literal, any case. */
function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((char) => {
      if (char === '*') return '.*';
      if (char === '?') return '.';
      return char.replace(/[.+^${}()|[\]\\-]/g, '\\$&');
    })
    .join('');
  return new RegExp(`^${body}$`, 'i');
}

/** The license settings every script of a farm needs, from its configuration. */
export function farmRules(farm: FarmConfig): FarmRules {
  return {
    id: farm.id,
    seats: farm.seats,
    countDisconnected: farm.countDisconnected,
    ...(farm.overuseGraceStartedAt === undefined ? {} : { overuseGraceStartedAt: farm.overuseGraceStartedAt }),
  };
}

/** {@link FarmDirectory.hostAllowed} for one farm on its own. */
export function hostAllowed(farm: FarmConfig, host: string): boolean {
  return new FarmDirectory([farm]).hostAllowed(farm.id, host);
}

interface Entry {
  config: FarmConfig;
  rules: FarmRules;
  /** Undefined: any host. */
  hostPatterns: readonly RegExp[] | undefined;
}

export class FarmDirectory {
  private readonly byId = new Map<string, Entry>();
  private readonly byToken = new Map<string, Entry>();
  private readonly farms: readonly FarmConfig[];

  /** `farms` were validated by `parseConfig`: ids unique in any case, each token hash in one farm. */
  constructor(farms: readonly FarmConfig[]) {
    this.farms = Object.freeze([...farms]);
    for (const config of farms) {
      const entry: Entry = {
        config,
        rules: Object.freeze(farmRules(config)),
        hostPatterns: config.hosts?.map(globToRegExp),
      };
      this.byId.set(idKey(config.id), entry);
      for (const hash of config.agentTokensSha256) this.byToken.set(hash, entry);
    }
  }

  /** Every configured farm, in configuration order. */
  list(): readonly FarmConfig[] {
    return this.farms;
  }

  ids(): string[] {
    return this.farms.map((farm) => farm.id);
  }

  /** The farm with this id, compared case-insensitively. */
  get(id: string): FarmConfig | undefined {
    return this.byId.get(idKey(id))?.config;
  }

  /** The farm an agent token (its lower-case hex sha256) opens, if any. */
  byTokenHash(sha256: string): FarmConfig | undefined {
    return this.byToken.get(sha256)?.config;
  }

  /** The farm's license rules as the scripts take them; undefined when it is not configured. */
  rules(id: string): FarmRules | undefined {
    return this.byId.get(idKey(id))?.rules;
  }

  /**
   * Whether the farm allows an agent to claim `host`: always when it lists no `hosts`, else when some
   * pattern matches the whole name, ignoring case (Windows host names are case-insensitive); false for
   * a farm that is not configured.
   */
  hostAllowed(id: string, host: string): boolean {
    const entry = this.byId.get(idKey(id));
    if (!entry) return false;
    return entry.hostPatterns === undefined || entry.hostPatterns.some((pattern) => pattern.test(host));
  }
}
