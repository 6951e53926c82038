import type { z } from 'zod';
import type { helloSchema } from './frame-schema.js';
import type { Session } from './session.js';

/** WebSocket subprotocol of wire protocol v1. */
export const SUBPROTOCOL = 'rasmon.v1';
/** Path of the agent endpoint on the collector's HTTP port. */
export const AGENT_PATH = '/v1/agent';

/** Pattern that farm and host names must match. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * An agent's host key as its hello carries it: 32 random bytes in base64url without padding
 * (docs/design.md §6, "Host binding").
 */
export const HOST_KEY_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface Limits {
  maxFrameBytes: number;
  maxEvents: number;
  maxSessions: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFrameBytes: 1_048_576,
  maxEvents: 1_000,
  maxSessions: 2_000,
});

// Agent → collector

/** The first frame of a connection, as the wire schema gives it. */
export type HelloFrame = z.output<typeof helloSchema>;

export interface SnapshotFrame {
  type: 'snapshot';
  seq: number;
  at: number;
  sessions: Session[];
}

export interface UpsertEvent {
  seq: number;
  at: number;
  op: 'upsert';
  session: Session;
}

export interface EndEvent {
  seq: number;
  at: number;
  op: 'end';
  id: string;
}

export type AgentEvent = UpsertEvent | EndEvent;

export interface EventsFrame {
  type: 'events';
  events: AgentEvent[];
}

/** Most characters of a status frame's `error`. */
export const MAX_STATUS_ERROR_CHARS = 300;

/** Optional messages a collector may list in its welcome's `features`. */
export const FEATURES = Object.freeze({ status: 'status' });

/**
 * The health of the agent's session source (feature `status`): no seq, not spooled, the latest wins.
 * `lastListAt` is when the source last listed the sessions (absent while it never has).
 */
export interface StatusFrame {
  type: 'status';
  source: string;
  ok: boolean;
  error?: string;
  lastListAt?: number;
}

export type AgentFrame = HelloFrame | SnapshotFrame | EventsFrame | StatusFrame;

// Collector → agent

export interface WelcomeFrame {
  type: 'welcome';
  ack: number;
  heartbeatSeconds: number;
  limits: Limits;
  /** The optional messages this collector understands (see FEATURES). */
  features?: string[];
}

export interface Rejection {
  seq: number;
  reason: string;
  /** Set for an invalid session inside a snapshot. */
  id?: string;
}

export interface AckFrame {
  type: 'ack';
  seq: number;
  rejected?: Rejection[];
}

export interface ResyncFrame {
  type: 'resync';
}

export type ErrorCode = 'bad_frame' | 'hello_required' | 'bad_hello' | 'forbidden' | 'superseded';

export interface ErrorFrame {
  type: 'error';
  code: ErrorCode;
  message: string;
}

export type CollectorFrame = WelcomeFrame | AckFrame | ResyncFrame | ErrorFrame;

/** WebSocket close codes the collector uses (RFC 6455 §7.4.1). */
export const CloseCode = Object.freeze({
  normal: 1000,
  goingAway: 1001,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  tryAgainLater: 1013,
});

/** The close code that follows each protocol error. */
export const ERROR_CLOSE_CODES: Readonly<Record<ErrorCode, number>> = Object.freeze({
  bad_frame: CloseCode.invalidPayload,
  hello_required: CloseCode.policyViolation,
  bad_hello: CloseCode.policyViolation,
  forbidden: CloseCode.policyViolation,
  superseded: CloseCode.policyViolation,
});
