/**
 * The ranges both sides accept for the numbers a collector announces in its welcome (and reads
 * from its config): outside them a value is a mistake or an attack, never a setting. A heartbeat
 * of 1e12 s overflows Node's timers into a busy loop; a frame limit of 1 byte locks every agent
 * out; one of 1e15 is no limit at all.
 */
export const LIMIT_RANGES = Object.freeze({
  /** Not necessarily whole (1.5 s is a heartbeat); below a second the leases churn Redis for nothing. */
  heartbeatSeconds: Object.freeze({ min: 1, max: 300 }),
  maxFrameBytes: Object.freeze({ min: 4096, max: 16 * 1024 * 1024 }),
  maxEvents: Object.freeze({ min: 1, max: 100_000 }),
  maxSessions: Object.freeze({ min: 1, max: 100_000 }),
});

/**
 * The most rejections one ack lists (the lowest seqs first). A frame of a thousand bad items
 * would otherwise earn an ack larger than the frame; the agent only logs them, and the limit keeps
 * every collector → agent frame far below what an agent accepts (`MAX_COLLECTOR_FRAME_BYTES`).
 */
export const MAX_LISTED_REJECTIONS = 50;

/** The longest session id an ack repeats back in a rejection. */
export const MAX_REJECTION_ID_CHARS = 128;

/** The largest frame an agent accepts from a collector: a welcome, an ack or an error is far smaller. */
export const MAX_COLLECTOR_FRAME_BYTES = 64 * 1024;
