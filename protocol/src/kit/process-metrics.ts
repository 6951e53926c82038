/**
 * prom-client's default metrics that `promtool check metrics` rejects: gauges named `_total`. The
 * agent and the collector both leave them out; their per-type breakdowns (`nodejs_active_handles{type}`,
 * `nodejs_active_requests{type}`, `nodejs_active_resources{type}`) stay and sum to the same.
 */
export const MISLABELLED_DEFAULTS: readonly string[] = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];
