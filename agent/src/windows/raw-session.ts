/**
 * What a session source reads from Windows before classification: the facts each source can know.
 * `classify` (classify.ts) turns these into protocol `Session`s with the configured rules.
 */

/** WTS_CONNECTSTATE_CLASS names, as the sources report them. */
export type RawState =
  'active' | 'connected' | 'connectquery' | 'shadow' | 'disconnected' | 'idle' | 'listen' | 'reset' | 'down' | 'init';

export interface RawSession {
  /** The WTS session id (unique on the host while the session lives). */
  sessionId: number;
  /** The user name as Windows prints it, without domain when the source does not give one. */
  user: string;
  /** NetBIOS domain, when the source knows it. */
  domain?: string;
  state: RawState;
  /** Session name (`rdp-tcp#5`, `console`, …); empty for a disconnected session. */
  sessionName?: string;
  /** Logon time, ms since the epoch, when known. */
  logonTime?: number;
  /** The logon time as printed, when it could not be parsed (kept to tell logons apart). */
  logonText?: string;
  clientName?: string;
  clientAddress?: string;
  /** WTSClientProtocolType: 0 console, 1 legacy, 2 RDP. */
  protocolType?: number;
  /** Names of the session's processes (lower case), when the source lists them. */
  processes?: string[];
  /** Whether the user is an administrator of the host, when the source can tell. */
  admin?: boolean;
}
