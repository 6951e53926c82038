/**
 * The farms a report covers, narrowed by customer and by licenseKey label: one filter for the
 * report command (`--customer`, `--key`; exit 2) and the API (`customer`, `key`; 404), so both
 * select the same farms and refuse the same selections with the same words.
 */
import type { FarmConfig } from '../config/config.js';

/** A customer or key that no farm (of the selection so far) has. */
export class FarmSelectionError extends Error {
  constructor(
    /** Which filter found nothing: `customer` or `key`. */
    readonly filter: 'customer' | 'key',
    message: string,
  ) {
    super(message);
    this.name = 'FarmSelectionError';
  }
}

export interface FarmSelection {
  customer?: string | undefined;
  key?: string | undefined;
}

/** At most 64 characters of a value the caller gave, quoted. */
const show = (text: string) => JSON.stringify(text.slice(0, 64));

/** The farms of `selection.customer` and `selection.key` when given, else all `farms`. */
export function selectFarms<T extends Pick<FarmConfig, 'customer' | 'licenseKey'>>(
  farms: readonly T[],
  selection: FarmSelection,
): T[] {
  let selected = [...farms];
  if (selection.customer !== undefined) {
    const customer = selection.customer;
    selected = selected.filter((farm) => farm.customer === customer);
    if (selected.length === 0) throw new FarmSelectionError('customer', `no farm has customer ${show(customer)}`);
  }
  if (selection.key !== undefined) {
    const key = selection.key;
    const narrowed = selection.customer !== undefined;
    selected = selected.filter((farm) => farm.licenseKey === key);
    if (selected.length === 0) {
      throw new FarmSelectionError(
        'key',
        `no farm${narrowed ? ` of customer ${show(selection.customer!)}` : ''} has licenseKey ${show(key)}`,
      );
    }
  }
  return selected;
}
