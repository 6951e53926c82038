/**
 * How long to wait before the next logon after the broker refused one. A wrong password retried at
 * the poll rate could lock the RAS administrator account out; so after the first refusal the wait
 * grows, and from the second refusal in a row it is at least five minutes (doubling up to an hour).
 * Only refused logons (`auth`) count: an unreachable broker never saw the password.
 */

export const LOGON_BACKOFF = Object.freeze({
  /** Wait after the first refusal. */
  firstMs: 60_000,
  /** Wait after the second refusal in a row; doubles from there. */
  repeatedMs: 5 * 60_000,
  maxMs: 60 * 60_000,
});

export class LogonBackoff {
  #refusals = 0;
  #notBefore = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Refused logons in a row. */
  get refusals(): number {
    return this.#refusals;
  }

  /** When the next logon may be tried (ms since the epoch); 0 when at once. */
  get notBefore(): number {
    return this.#notBefore;
  }

  /** Whether a logon may be sent now. */
  mayLogOn(): boolean {
    return this.now() >= this.#notBefore;
  }

  /** Records a refused logon; returns how long to wait before the next one, in ms. */
  refused(): number {
    this.#refusals += 1;
    const wait =
      this.#refusals === 1
        ? LOGON_BACKOFF.firstMs
        : Math.min(LOGON_BACKOFF.maxMs, LOGON_BACKOFF.repeatedMs * 2 ** Math.min(this.#refusals - 2, 10));
    this.#notBefore = this.now() + wait;
    return wait;
  }

  /** Records an accepted logon: the next refusal starts over. */
  accepted(): void {
    this.#refusals = 0;
    this.#notBefore = 0;
  }
}
