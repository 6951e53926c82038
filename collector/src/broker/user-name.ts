/**
 * One person, one name: the agents read `DOMAIN\user` from Windows (WTSDomainName and WTSUserName),
 * while a broker may list the same person as a UPN, `user@corp.example`. The license engine compares
 * names with `normalizeUser` (docs/design.md §2 rule 4), so a broker's name is first put in the
 * agents' form: a UPN whose suffix the farm maps (`ras.upnDomains`) becomes `DOMAIN\user`. A name
 * already in `DOMAIN\user` form is kept; a UPN with an unmapped suffix is kept as it is, and the
 * caller counts it: it cannot match an agent's name, so the same person may be counted twice.
 */

export interface BrokerUserName {
  /** The name the engine compares: `DOMAIN\user` where it can be told, else as the broker spelt it. */
  readonly name: string;
  /** A UPN whose suffix `ras.upnDomains` does not map. */
  readonly unmappedUpn: boolean;
}

/**
 * `upnDomains`: lower-case UPN suffix → NetBIOS domain. A suffix also maps its subdomains' UPNs
 * only when listed itself: `eu.corp.example` needs its own entry.
 */
export function brokerUserName(raw: string, upnDomains: Readonly<Record<string, string>>): BrokerUserName {
  const name = raw.trim();
  if (name.includes('\\')) return { name, unmappedUpn: false };
  const at = name.lastIndexOf('@');
  if (at <= 0 || at === name.length - 1) return { name, unmappedUpn: false };
  const suffix = name.slice(at + 1).toLowerCase();
  const domain = Object.hasOwn(upnDomains, suffix) ? upnDomains[suffix] : undefined;
  if (domain === undefined) return { name, unmappedUpn: true };
  return { name: `${domain}\\${name.slice(0, at)}`, unmappedUpn: false };
}
