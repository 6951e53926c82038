/**
 * The farms of the running configuration, and the one place that answers "which farm is this and
 * what may it do": lookup by id (case-insensitive, like the hello), by the sha256 of an agent token,
 * the farm's license rules for the scripts, and whether it allows a host name (patterns compiled
 * once). A reload replaces the whole directory; nothing holds on to an old farm. Callers ask it
 * at the time they act, so what they do follows the configuration loaded then.
 */
import type { PeerCertificate } from 'node:tls';
import { normalizeHost } from '@rasmon/protocol';
import { farmIdKey, type FarmConfig } from './config.js';

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

/** The farm settings every script needs, from the farm's configuration. */
export interface FarmRules {
  id: string;
  /** Undefined: no cap (an SPLA farm without seats), so never over; passed to Lua as ''. */
  seats: number | undefined;
  countDisconnected: boolean;
  overuseGraceStartedAt?: number;
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

/**
 * License values a farm takes from its RAS broker (`ras.adopt`): broker/adopted-license.ts reads them
 * from RAS's answer; the directory lays them over the farm's configuration.
 */
export interface LicenseOverlay {
  readonly seats?: number | undefined;
  readonly license?: FarmConfig['license'] | undefined;
  readonly expires?: number | undefined;
}

interface Entry {
  /** The farm as its configuration gives it. */
  readonly configured: FarmConfig;
  /** The farm as everything else sees it: `configured` with the values adopted from RAS on top. */
  config: FarmConfig;
  rules: FarmRules;
  /** What was adopted from RAS; undefined until RAS answered, or without ras.adopt. */
  adopted: LicenseOverlay | undefined;
  /** Undefined: any host. */
  hostPatterns: readonly RegExp[] | undefined;
}

interface TokenEntry {
  farm: Entry;
  /** The token's own `hosts`; undefined: any host the farm allows. */
  hostPatterns: readonly RegExp[] | undefined;
}

/** Why a hello may not claim its host name although the farm allows it (docs/design.md §3). */
export interface HostIdentityRefusal {
  reason: 'token_hosts' | 'certificate_name';
  message: string;
}

/** A client certificate's names, as a hello's host is compared with them. */
export interface PeerNames {
  /** Subject CN and DNS subject alternative names, lower case. */
  names: ReadonlySet<string>;
}

export class FarmDirectory {
  private readonly byId = new Map<string, Entry>();
  private readonly byToken = new Map<string, TokenEntry>();
  private farms: readonly FarmConfig[];
  /** Rules of the farms the reload that made this directory removed (or respelled), by their old id. */
  private readonly removed = new Map<string, FarmRules>();

  /**
   * `farms` were validated by `parseConfig`: ids unique in any case, each token hash in one farm.
   * `previous` is the directory a reload replaces: the rules of the farms it drops are kept for
   * {@link releaseRules}.
   */
  constructor(farms: readonly FarmConfig[], previous?: FarmDirectory) {
    this.farms = Object.freeze([...farms]);
    for (const config of farms) {
      const entry: Entry = {
        configured: config,
        config,
        rules: Object.freeze(farmRules(config)),
        adopted: undefined,
        hostPatterns: config.hosts?.map(globToRegExp),
      };
      this.byId.set(farmIdKey(config.id), entry);
      for (const token of config.agentTokensSha256) {
        this.byToken.set(token.sha256, { farm: entry, hostPatterns: token.hosts?.map(globToRegExp) });
      }
    }
    for (const { config, rules, adopted } of previous?.byId.values() ?? []) {
      if (this.get(config.id)?.id !== config.id) this.removed.set(config.id, rules);
      // What RAS said stays true across a reload until the next poll says otherwise.
      else if (adopted) this.adopt(config.id, adopted);
    }
  }

  /**
   * Lays the license values adopted from RAS over a farm with `ras.adopt` (undefined: none, the
   * configuration's own values apply). Returns whether the farm's effective values changed. A farm
   * without `ras.adopt` is left as configured.
   */
  adopt(id: string, overlay: LicenseOverlay | undefined): boolean {
    const entry = this.byId.get(farmIdKey(id));
    if (!entry || entry.configured.ras?.adopt !== true) return false;
    if (JSON.stringify(entry.adopted ?? null) === JSON.stringify(overlay ?? null)) return false;
    entry.adopted = overlay;
    const given = Object.fromEntries(Object.entries(overlay ?? {}).filter(([, value]) => value !== undefined));
    const merged: FarmConfig = { ...entry.configured, ...given };
    // An SPLA farm RAS gives no seats for has no cap, whatever the fallback said.
    if (overlay && overlay.seats === undefined && overlay.license === 'spla') delete merged.seats;
    const config = Object.freeze(merged);
    entry.config = config;
    entry.rules = Object.freeze(farmRules(config));
    this.farms = Object.freeze(this.farms.map((farm) => (farmIdKey(farm.id) === farmIdKey(id) ? config : farm)));
    return true;
  }

  /** The farm as configured, before anything adopted from RAS; undefined when it is not configured. */
  configured(id: string): FarmConfig | undefined {
    return this.byId.get(farmIdKey(id))?.configured;
  }

  /** The values adopted from RAS for the farm, if any. */
  adopted(id: string): LicenseOverlay | undefined {
    return this.byId.get(farmIdKey(id))?.adopted;
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
    return this.byId.get(farmIdKey(id))?.config;
  }

  /** The farm an agent token (its lower-case hex sha256) opens, if any. */
  byTokenHash(sha256: string): FarmConfig | undefined {
    return this.byToken.get(sha256)?.farm.config;
  }

  /** The farm's license rules as the scripts take them; undefined when it is not configured. */
  rules(id: string): FarmRules | undefined {
    return this.byId.get(farmIdKey(id))?.rules;
  }

  /**
   * The rules to release a host claimed under farm id `id` (spelled as it was then: the farm's Redis
   * keys are named by it): the farm's rules, or for a farm that the reload making this directory
   * removed or respelled, the rules it had. That reload closes the farm's connections, and each
   * releases its host as it closes (docs/design.md §2 rule 10); a farm removed by an earlier reload
   * is unknown.
   */
  releaseRules(id: string): FarmRules | undefined {
    const rules = this.rules(id);
    return rules?.id === id ? rules : this.removed.get(id);
  }

  /**
   * Whether the farm allows an agent to claim `host`: always when it lists no `hosts`, else when some
   * pattern matches the whole name, ignoring case (Windows host names are case-insensitive); false for
   * a farm that is not configured.
   */
  hostAllowed(id: string, host: string): boolean {
    const entry = this.byId.get(farmIdKey(id));
    if (!entry) return false;
    return matches(entry.hostPatterns, host);
  }

  /**
   * Whether a connection of this token may claim `host` of a farm that allows it: the token's own
   * `hosts`, if it has them, must match the name; with `hostIdentity: certificate` the name must also
   * be one of the client certificate's (`peer`; none without a certificate). Undefined when it may.
   */
  hostIdentityRefusal(tokenSha256: string, host: string, peer: PeerNames | undefined): HostIdentityRefusal | undefined {
    const token = this.byToken.get(tokenSha256);
    if (!token) return { reason: 'token_hosts', message: 'this token is not valid for any farm' };
    if (!matches(token.hostPatterns, host)) {
      return { reason: 'token_hosts', message: `this token may not claim host ${host}` };
    }
    if (token.farm.config.hostIdentity === 'certificate' && !peer?.names.has(normalizeHost(host))) {
      return { reason: 'certificate_name', message: `host ${host} is not a name of this client certificate` };
    }
    return undefined;
  }
}

function matches(patterns: readonly RegExp[] | undefined, host: string): boolean {
  return patterns === undefined || patterns.some((pattern) => pattern.test(host));
}

/**
 * The names of a verified client certificate: its subject CN and its DNS subject alternative
 * names, lower case (host names compare case-insensitively). Undefined without a certificate.
 */
export function peerNames(certificate: PeerCertificate | undefined): PeerNames | undefined {
  if (!certificate || Object.keys(certificate).length === 0) return undefined;
  const names = new Set<string>();
  const cn = certificate.subject?.CN;
  for (const name of Array.isArray(cn) ? cn : cn === undefined ? [] : [cn]) names.add(normalizeHost(name));
  for (const entry of (certificate.subjectaltname ?? '').split(',')) {
    const match = /^\s*DNS:(.+?)\s*$/.exec(entry);
    if (match?.[1]) names.add(normalizeHost(match[1]));
  }
  return { names };
}
