export { Agent, type AgentOptions } from './agent.js';
export { Classifier, CLASSIFY_DEFAULTS, type ClassifyConfig } from './classify.js';
export { SessionDiff, type EventBody } from './session-diff.js';
export { Spool } from './spool.js';
export { SessionSimulator, type SimulationOptions } from './sources/simulate.js';
export { simulateFleet, type FleetOptions } from './sources/simulate-fleet.js';
export type { SessionSource } from './sources/source.js';
export type { RawSession, RawState } from './sources/raw-session.js';
export { AgentMetrics } from './metrics.js';
