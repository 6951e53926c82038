export * from './session.js';
export * from './messages.js';
export * from './frame-parser.js';
export * from './license-model.js';
export * from './license-state.js';
export * from './reference-farm.js';
export * from './limit-ranges.js';
export * from './collector-frame-schema.js';
