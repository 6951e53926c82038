// The RAS words the page uses, each explained in one line: shown as a tooltip (title) where the word
// appears and listed under the page, so a keyboard or touch reader gets them too.

export const TERMS = {
  seats: [
    'Seats',
    'the concurrent users the license allows; RAS takes one per user, whatever their sessions and devices.',
  ],
  overuse: ['Overuse', 'users in use above the seats, counted the moment a user logs on, between RAS’s own checks.'],
  overuseGrace: [
    'Overuse grace',
    'the days (7 by default) a farm may run over its seats, from the first user over; only more seats reset it.',
  ],
  deactivation: [
    'Deactivation',
    'once the overuse grace is used up, any overuse makes RAS deactivate the farm within an hour or two.',
  ],
  expiryGrace: [
    'Expiry grace',
    'a primary license keeps the farm running 30 days after it expires; a sublicense has no such grace.',
  ],
  sublicense: ['Sublicense', 'an extra key with its own seats and expiry, and no expiry grace.'],
  spla: [
    'SPLA',
    'a service provider’s license, billed by the peak of concurrent users over the billing period rather than capped by seats.',
  ],
  unverified: [
    'Unverified users',
    'users held only through hosts whose agent is not connected: RAS still counts them, rasmon cannot see them now.',
  ],
  forecast: [
    'Forecast',
    'when the trend of the daily peaks over the last weeks reaches the seats; none while it is flat or falling.',
  ],
  peakToday: ['Peak today', 'the most users in use at once since 00:00 UTC.'],
  hostStates: [
    'Stale, retired',
    'a stale host’s agent is not connected, its sessions still count; after a day without its agent it is retired and they stop counting.',
  ],
  exempt: [
    'Exempt admin desktop',
    'an administrator’s desktop that takes no license: the first two per host, RAS or direct RDP.',
  ],
  sessionSource: [
    'Session source',
    'where an agent reads the host’s sessions (wts, quser, a command) or, for RAS broker rows, the broker’s sessions.',
  ],
};

/** The one-line explanation of a term, for a title attribute. */
export function explain(key) {
  const [name, line] = TERMS[key];
  return `${name}: ${line}`;
}
