/**
 * `rasmon-agent check --config FILE`: one line per thing the agent needs, each `ok` or `FAIL`,
 * exit 1 when any failed. The token file reads (on Windows: and only SYSTEM and Administrators can
 * read it; elsewhere: and its mode gives its group and others nothing), the source lists sessions, and the collector accepts the token: a real hello and
 * welcome with this host's name and spool stream, then a normal close. That hello takes the host
 * over for a moment, so a running agent is superseded and reconnects after
 * `reconnect.supersededSeconds`; nothing is lost meanwhile.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SUBPROTOCOL } from '@rasmon/protocol';
import type { Logger } from 'pino';
import { WebSocket } from 'ws';
import { tlsOptions } from './agent-setup.js';
import { agentUrl } from './link/collector-link.js';
import { explainConnectError } from './link/connect-error.js';
import { readHostKey } from './link/host-key.js';
import { AgentConfigError, ConfigPathError, readToken, type AgentConfig } from './config.js';
import { createSource } from './create-source.js';
import { VERSION } from './version.js';

export interface CheckLine {
  ok: boolean;
  text: string;
}

/** The stream the agent's spool uses, so the check's hello does not start a new one. */
function spoolStream(config: AgentConfig): string {
  try {
    const state = JSON.parse(readFileSync(join(config.spool.dir, 'state.json'), 'utf8')) as { stream?: unknown };
    if (typeof state.stream === 'string' && state.stream.length > 0) return state.stream;
  } catch {
    // No spool yet: the agent will start a new stream anyway.
  }
  return `check-${randomBytes(6).toString('hex')}`;
}

async function tokenLine(config: AgentConfig): Promise<{ line: CheckLine; token?: string }> {
  if (!config.tokenFile) return { line: { ok: false, text: 'token file: tokenFile is not set' } };
  let token: string;
  try {
    token = readToken(config.tokenFile);
  } catch (err) {
    if (!(err instanceof ConfigPathError)) throw err;
    return { line: { ok: false, text: `token file ${config.tokenFile} ${err.reason}` } };
  }
  if (process.platform === 'win32') {
    const { accountName, getSecurity, processUserSid } = await import('./windows/file-lock.js');
    const { describeSid, foreignOwnerMessage, lockDecision, untrustedReaders } = await import('./windows/dacl.js');
    let sddl: string;
    let self: string;
    try {
      sddl = getSecurity(config.tokenFile);
      self = processUserSid();
    } catch (err) {
      return {
        line: {
          ok: false,
          text: `token file ${config.tokenFile} reads, but its ACL cannot be read: ${(err as Error).message}`,
        },
        token,
      };
    }
    const readers = untrustedReaders(sddl);
    if (readers.length > 0) {
      return {
        line: {
          ok: false,
          text: `token file ${config.tokenFile} reads, but ${readers.map(describeSid).join(', ')} can read it too (service install locks it)`,
        },
        token,
      };
    }
    const decision = lockDecision(sddl, self);
    if (decision.action === 'refuse') {
      // Well-known SIDs have their English name already; others are looked up (DOMAIN\user).
      const account = describeSid(decision.owner) === decision.owner ? accountName(decision.owner) : undefined;
      return {
        line: { ok: false, text: `token file: ${foreignOwnerMessage(config.tokenFile, decision.owner, account)}` },
        token,
      };
    }
    return {
      line: { ok: true, text: `token file ${config.tokenFile} reads; only SYSTEM and Administrators can read it` },
      token,
    };
  }
  const problem = tokenModeProblem(config.tokenFile, statSync(config.tokenFile).mode);
  if (problem) return { line: { ok: false, text: problem }, token };
  return { line: { ok: true, text: `token file ${config.tokenFile} reads; only its owner can read it` }, token };
}

/**
 * What is wrong with a token file's Unix mode: any permission for its group or for others (mode &
 * 0o077). Undefined when there is nothing (0600, 0400).
 */
export function tokenModeProblem(path: string, mode: number): string | undefined {
  if ((mode & 0o077) === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  const who = [mode & 0o070 ? 'its group' : '', mode & 0o007 ? 'other users' : ''].filter(Boolean).join(' and ');
  return `token file ${path} reads, but ${who} can read or change it too (mode ${octal}): run chmod 600 ${path}`;
}

async function sourceLine(config: AgentConfig, log: Logger): Promise<CheckLine> {
  try {
    const sessions = await createSource(config, log).list(Date.now());
    return {
      ok: true,
      text: `source ${config.source} lists ${sessions.length} session${sessions.length === 1 ? '' : 's'}`,
    };
  } catch (err) {
    return { ok: false, text: `source ${config.source} cannot list the sessions: ${(err as Error).message}` };
  }
}

/** One hello/welcome round trip; the line says what the collector answered. */
export function collectorLine(config: AgentConfig, token: string, timeoutMs = 10_000): Promise<CheckLine> {
  const collector = config.collector!;
  const fail = (why: string): CheckLine => ({ ok: false, text: `collector ${collector}: ${why}` });
  // The agent's own host key, so a host bound to it passes; none before the agent's first start.
  let hostKey: string | undefined;
  try {
    hostKey = readHostKey(config.spool.dir);
  } catch (err) {
    return Promise.resolve(fail((err as Error).message));
  }
  return new Promise((resolve) => {
    let settled = false;
    let socket: WebSocket;
    const done = (line: CheckLine) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'check done');
      else socket.terminate();
      resolve(line);
    };
    const timer = setTimeout(() => done(fail(`no welcome within ${timeoutMs / 1000} s`)), timeoutMs);
    try {
      socket = new WebSocket(agentUrl(collector), [SUBPROTOCOL], {
        headers: { Authorization: `Bearer ${token}` },
        ...tlsOptions(config),
        handshakeTimeout: timeoutMs,
        perMessageDeflate: false,
      });
    } catch (err) {
      clearTimeout(timer);
      resolve(fail((err as Error).message));
      return;
    }
    socket.on('unexpected-response', (_req, res) => {
      res.resume();
      done(
        fail(
          res.statusCode === 401 ? 'refused the token (HTTP 401)' : `refused the connection (HTTP ${res.statusCode})`,
        ),
      );
    });
    socket.on('error', (err) => done(fail(explainConnectError(err, collector))));
    socket.on('open', () => {
      socket.send(
        JSON.stringify({
          type: 'hello',
          farm: config.farm,
          host: config.host,
          stream: spoolStream(config),
          agent: `rasmon-agent/${VERSION}`,
          ...(hostKey ? { hostKey } : {}),
        }),
      );
    });
    socket.on('message', (data) => {
      let frame: { type?: string; ack?: number; code?: string; message?: string };
      try {
        frame = JSON.parse(data.toString()) as typeof frame;
      } catch {
        return done(fail('answered with a frame that is not JSON'));
      }
      if (frame.type === 'welcome')
        done({
          ok: true,
          text: `collector ${collector} accepted the token for farm ${config.farm}, host ${config.host} (welcome, ack ${frame.ack})`,
        });
      else if (frame.type === 'error') done(fail(`refused the hello: ${frame.code}: ${frame.message}`));
    });
    socket.on('close', (code) => done(fail(`closed the connection (${code}) before its welcome`)));
  });
}

/** Runs every check and prints one line each; the exit code is 0 only when all passed. */
export async function runCheck(config: AgentConfig, log: Logger, write: (line: string) => void): Promise<number> {
  const lines: CheckLine[] = [];
  const print = (line: CheckLine) => {
    lines.push(line);
    write(`${line.ok ? 'ok  ' : 'FAIL'} ${line.text}`);
  };
  const { line, token } = await tokenLine(config);
  print(line);
  print(await sourceLine(config, log));
  if (!config.collector || !config.farm)
    print({ ok: false, text: `collector: ${config.collector ? 'farm' : 'collector'} is not set` });
  else if (token === undefined) print({ ok: false, text: `collector ${config.collector}: not tried without a token` });
  else {
    try {
      print(await collectorLine(config, token));
    } catch (err) {
      if (!(err instanceof AgentConfigError)) throw err;
      print({ ok: false, text: `collector ${config.collector}: ${err.message}` });
    }
  }
  return lines.every((l) => l.ok) ? 0 : 1;
}
