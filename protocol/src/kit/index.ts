/**
 * What the agent and the collector both need besides the wire protocol: reading a configuration file,
 * wording a validation problem, the error base class, the root logger, atomic file writes, the
 * process metrics both leave out. Node-only,
 * so it is a separate entry point (`@rasmon/protocol/kit`) from the protocol itself.
 */
export * from './atomic-write.js';
export * from './config-file.js';
export * from './each-limited.js';
export * from './errors.js';
export * from './logger.js';
export * from './zod-issue.js';
export * from './log-serializers.js';
export * from './process-metrics.js';
