export { Agent, type AgentOptions } from './agent.js';
export { Classifier, CLASSIFY_DEFAULTS, type ClassifyConfig } from './windows/classify.js';
export { SessionDiff, type EventBody } from './session/session-diff.js';
export { Spool } from './link/spool.js';
export { SessionSimulator, type SimulationOptions } from './simulator/simulate.js';
export { simulateFleet, type FleetOptions } from './simulator/simulate-fleet.js';
export type { SessionSource } from './session/source.js';
export type { RawSession, RawState } from './windows/raw-session.js';
export { AgentMetrics } from './metrics.js';
export { AGENT_EXEC_ARGV } from './runtime-flags.js';
export {
  reconnectDelay,
  withinDrainLease,
  AFTER_DRAIN_MAX_MS,
  parseRetryAfter,
  DEFAULT_RECONNECT_POLICY,
  type Disconnect,
  type ReconnectPolicy,
} from './link/reconnect-delay.js';
