/**
 * Whether a connection may hold a host of its farm, under the configuration loaded now: asked at its
 * hello, and again for every open connection when a reload replaced the farms. One set of checks for
 * both: the token's farm, the host's place in the farm, the host's identity (docs/design.md §3).
 */
import type { FarmConfig } from '../config/config.js';
import type { FarmDirectory, HostIdentityRefusal, PeerNames } from '../config/farm-directory.js';
import type { UpgradeRejection } from '../metrics/metrics.js';

/** What a connection proved at its upgrade. */
export interface Credentials {
  /** sha256 of the bearer token. */
  tokenSha256: string;
  /** The farm the token opened then. */
  farmId: string;
  /** The client certificate's names (with `tls.ca`). */
  peer: PeerNames | undefined;
}

/** When admission is asked: at a hello naming a farm, or at a reload for what the connection holds. */
export type AdmissionMoment = { kind: 'hello'; farm: string } | { kind: 'reload' };

/** Why a connection may not (or may no longer) hold the host; closed with `forbidden`. */
export interface AdmissionRefusal {
  /** The reason `rasmon_collector_upgrades_rejected_total` counts. */
  reason: UpgradeRejection;
  message: string;
  /** Set when the host's identity was refused at a hello: logged rate-limited, per farm. */
  identity?: HostIdentityRefusal;
}

export type Admission = { farm: FarmConfig; refusal?: undefined } | { farm?: undefined; refusal: AdmissionRefusal };

/**
 * Admits a connection to its farm and, when it names one, to `host`. At a reload every refusal counts
 * as `revoked` and says what the reload changed.
 */
export function admit(
  farms: FarmDirectory,
  who: Credentials,
  host: string | undefined,
  moment: AdmissionMoment,
): Admission {
  const reload = moment.kind === 'reload';
  const refused = (reason: UpgradeRejection, message: string): Admission => ({ refusal: { reason, message } });
  const farm = farms.get(who.farmId);
  if (reload) {
    const tokenFarm = farms.byTokenHash(who.tokenSha256);
    if (!tokenFarm || tokenFarm !== farm) return refused('revoked', 'the token of this connection was revoked');
    // The farm's Redis keys are named by its id as written: the agent comes back under the new one.
    if (tokenFarm.id !== who.farmId)
      return refused('revoked', `farm ${who.farmId} is now configured as ${tokenFarm.id}`);
  } else if (!farm || farm !== farms.get(moment.farm)) {
    // The token's farm and the one the hello names: the same entry of the directory, which compares
    // ids by its one case rule.
    return refused('forbidden', `this token is not valid for farm ${moment.farm}`);
  }
  if (!farm) return refused('revoked', 'the token of this connection was revoked');
  if (host === undefined) return { farm };
  if (!farms.hostAllowed(farm.id, host)) {
    return reload
      ? refused('revoked', `host ${host} is no longer among the hosts of farm ${farm.id}`)
      : refused('forbidden', `host ${host} is not among the hosts of farm ${farm.id}`);
  }
  const identity = farms.hostIdentityRefusal(who.tokenSha256, host, who.peer);
  if (identity) {
    return reload
      ? refused('revoked', `${identity.message} (changed by a reload)`)
      : { refusal: { reason: identity.reason, message: identity.message, identity } };
  }
  return { farm };
}
