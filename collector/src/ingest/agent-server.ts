/**
 * The `/v1/agent` endpoint: authenticates the HTTP upgrade (bearer token checked against each
 * farm's sha256 list, 401 otherwise), then keeps every agent connection and drives its life from
 * outside: its heartbeat, the reloads it must pass again, the newer connection that supersedes it,
 * the farm's epoch change that has it take its host again. What each of those means for one
 * connection is the connection's (agent-connection.ts).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import { AGENT_PATH, CloseCode, SUBPROTOCOL } from '@rasmon/protocol';
import { ClientAddress } from './client-address.js';
import { peerAddress } from './proxy-listener.js';
import { AgentConnection, type ConnectionContext } from './agent-connection.js';
import { bearerToken } from '../config/bearer-token.js';
import { sha256Hex, type CollectorConfig } from '../config/config.js';
import { peerNames } from '../config/farm-directory.js';
import { eachLimited, type Logger } from '@rasmon/protocol/kit';
import type { UpgradeRejection } from '../metrics/metrics.js';
import { KeyedRateLimiter } from './rate-limit.js';
import { RebuildQueue } from './rebuild-queue.js';
import { HELLO_REFUSALS, QUOTA_REFUSALS, RefusalLog } from './refusal-log.js';

export interface AgentServerOptions {
  context: ConnectionContext;
  log: Logger;
  /** Unique per collector process; prefixes connection ids, which are host owners in Redis. */
  collectorId: string;
  limits: CollectorConfig['limits'];
  /** `http.trustedProxies`: load balancers whose X-Forwarded-For names the agent. */
  trustedProxies?: readonly string[];
}

/** How long a refused peer may take to read its refusal before the socket is destroyed anyway. */
const REFUSAL_LINGER_MS = 2000;

/**
 * Writes the refusal and destroys the socket once it is written: `end()` alone leaves a
 * half-closed socket that a peer can hold for as long as it likes (the HTTP server allows half
 * open sockets), and enough of them exhaust the file descriptors.
 */
function refuseUpgrade(socket: Duplex, status: number, reason: string, headers: Record<string, string> = {}): void {
  const body = `${reason}\n`;
  const lines = [
    `HTTP/1.1 ${status} ${reason}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
  setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
}

/**
 * An upgrading socket's error handler, one function for all: a closure here would hold the scope of
 * handleUpgrade, the upgrade request with its headers (the bearer token too), for the life of the
 * connection.
 */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** Heartbeat work is spread over the interval in steps of this length. */
const BEAT_STEP_MS = 100;

/** Connections kept free for scrapes, probes and the API when agents fill `maxConnections`. */
export const HTTP_RESERVE = 256;

/** Leases renewed at once when a drain hands them over (a heartbeat's worth of renewals in a burst). */
const HAND_OVER_CONCURRENCY = 256;

export class AgentServer {
  private readonly wss: WebSocketServer;
  private readonly connections = new Set<AgentConnection>();
  /**
   * The connections again, by the step of the heartbeat interval at which each is pinged and its
   * lease renewed: spread evenly, so that 10,000 agents do not all renew in the same instant.
   */
  private readonly beatSlots: Array<Set<AgentConnection>>;
  private beatStep = 0;
  /** The claimed connection of each farm and host, so that a hello supersedes in O(1). */
  private readonly byHost = new Map<string, AgentConnection>();
  private heartbeat: NodeJS.Timeout | undefined;
  private nextId = 0;
  private draining = false;
  private readonly releases = new Set<Promise<void>>();
  private readonly upgradeLimiter: KeyedRateLimiter;
  private readonly refusals: RefusalLog;
  private readonly identityRefusals: RefusalLog;
  private readonly quotaRefusals: RefusalLog;
  /** Hosts that owe their state after their farm's data was lost, asked a window at a time. */
  private readonly rebuilds = new RebuildQueue();
  /** Hosts already warned of for an agent without a host key. */
  private readonly keylessHosts = new Set<string>();

  private readonly clientAddress: ClientAddress;

  constructor(private readonly options: AgentServerOptions) {
    this.clientAddress = new ClientAddress(options.trustedProxies ?? []);
    this.upgradeLimiter = new KeyedRateLimiter(
      options.limits.upgradesPerSecondPerAddress,
      options.limits.upgradeBurstPerAddress,
    );
    this.refusals = new RefusalLog(options.log);
    this.identityRefusals = new RefusalLog(options.log, HELLO_REFUSALS);
    this.quotaRefusals = new RefusalLog(options.log, QUOTA_REFUSALS);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.context.limits.maxFrameBytes,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    const steps = Math.max(1, Math.round((options.context.heartbeatSeconds * 1000) / BEAT_STEP_MS));
    this.beatSlots = Array.from({ length: steps }, () => new Set());
  }

  get size(): number {
    return this.connections.size;
  }

  /**
   * The configuration's farms were replaced: closes the connections whose token was revoked (or
   * whose farm was removed) or whose host the farm no longer allows.
   */
  farmsChanged(): void {
    for (const connection of this.connections) connection.recheck();
  }

  /** Every step, one slot of connections has its heartbeat: each connection once per interval. */
  start(): void {
    const intervalMs = this.options.context.heartbeatSeconds * 1000;
    const stepMs = intervalMs / this.beatSlots.length;
    this.heartbeat = setInterval(() => {
      const slot = this.beatSlots[this.beatStep]!;
      this.beatStep = (this.beatStep + 1) % this.beatSlots.length;
      for (const connection of slot) void connection.heartbeat();
    }, stepMs);
    this.heartbeat.unref();
  }

  /** The HTTP server's `upgrade` handler. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { metrics } = this.options.context;
    socket.on('error', destroyOnError);
    const remote = this.clientAddress.of(peerAddress(req.socket), req.headers['x-forwarded-for']);
    const refuse = (reason: UpgradeRejection, status: number, text: string, headers: Record<string, string> = {}) => {
      metrics.upgradesRejected.inc({ reason });
      this.refusals.refused(reason, remote, status);
      refuseUpgrade(socket, status, text, headers);
    };
    // Before anything that costs: a peer over its rate gets no token check.
    if (!this.upgradeLimiter.allow(remote ?? ''))
      return refuse('rate_limited', 429, 'Too Many Requests', {
        'Retry-After': String(this.upgradeLimiter.retryAfterSeconds(remote ?? '')),
      });
    const path = (req.url ?? '/').split('?')[0];
    if (path !== AGENT_PATH) return refuse('not_found', 404, 'Not Found');
    if (this.draining) return refuse('draining', 503, 'Service Unavailable', { 'Retry-After': '1' });
    if (this.connections.size >= this.options.limits.maxConnections - HTTP_RESERVE) {
      return refuse('too_many_connections', 503, 'Service Unavailable', { 'Retry-After': '10' });
    }
    const token = bearerToken(req);
    const tokenSha256 = token === undefined ? undefined : sha256Hex(token);
    const farmId = tokenSha256 === undefined ? undefined : this.options.context.farms().byTokenHash(tokenSha256)?.id;
    if (tokenSha256 === undefined || farmId === undefined) {
      return refuse('unauthorized', 401, 'Unauthorized', { 'WWW-Authenticate': 'Bearer realm="rasmon"' });
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(SUBPROTOCOL))
      return refuse('subprotocol', 400, `Bad Request: subprotocol ${SUBPROTOCOL} required`);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req, remote, farmId, tokenSha256));
  }

  private accept(
    ws: WebSocket,
    req: IncomingMessage,
    remote: string | undefined,
    farmId: string,
    tokenSha256: string,
  ): void {
    const { context, log } = this.options;
    const id = `${this.options.collectorId}:${(this.nextId += 1)}`;
    const connection = new AgentConnection(id, farmId, tokenSha256, ws, context, log, remote);
    // With tls.ca the certificate was verified before the upgrade; without TLS there is none.
    const tls = req.socket as Partial<TLSSocket>;
    connection.peer = typeof tls.getPeerCertificate === 'function' ? peerNames(tls.getPeerCertificate()) : undefined;
    connection.identityRefusals = this.identityRefusals;
    connection.quotaRefusals = this.quotaRefusals;
    connection.keylessHosts = this.keylessHosts;
    this.connections.add(connection);
    const slot = this.beatSlots[this.nextId % this.beatSlots.length]!;
    slot.add(connection);
    context.metrics.agentsConnected.set(this.connections.size);
    ws.on('error', (err) => {
      // Oversized frames (1009) and protocol violations arrive here; ws closes the socket itself.
      connection.log.info(
        { err: { message: err.message, code: (err as { code?: string }).code } },
        'agent socket error',
      );
      if ((err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        context.metrics.frames.inc({ type: 'oversized', result: 'refused' });
      }
    });
    ws.on('close', (code) => {
      connection.markClosed();
      this.connections.delete(connection);
      slot.delete(connection);
      this.unindexHost(connection);
      context.metrics.agentsConnected.set(this.connections.size);
      connection.log.info({ code }, 'agent disconnected');
      const release = connection.release();
      this.releases.add(release);
      void release.finally(() => this.releases.delete(release));
    });
  }

  /**
   * A read found the farm's epoch changed (its data was lost): each connection of the farm here
   * whose host's state is not in under `epoch` yet is marked as owing it; once the marks are
   * written (the promise returned), each is queued to take its host again and ask its agent for a
   * snapshot, behind the hosts of farms found before (a connection whose own frame or renewal met
   * the loss takes its host again at once, outside the queue: those come spread over the
   * heartbeat interval).
   */
  epochChanged(farm: string, epoch: string): Promise<void> {
    const claimed = [...this.connections].filter(
      (connection) => connection.claim && connection.farmId === farm && connection.stateEpoch !== epoch,
    );
    return this.markRebuilding(farm, claimed).then(() => this.rebuilds.add(farm, claimed, epoch));
  }

  /**
   * Until each has resent its state, the farm's numbers are not exact: withheld, not shown low. The
   * flags are set before the marks are written, so a snapshot applied meanwhile removes its mark
   * after it was written (one Redis connection keeps the order).
   */
  private async markRebuilding(farm: string, claimed: AgentConnection[]): Promise<void> {
    for (const connection of claimed) connection.rebuilding = true;
    try {
      await this.options.context.engine.markRebuilding(
        farm,
        claimed.map((connection) => connection.claim!.host),
      );
    } catch (err) {
      for (const connection of claimed) connection.rebuilding = false;
      this.options.log.warn({ err, farm }, 'could not mark the farm as rebuilding');
    }
  }

  private static hostKey(connection: AgentConnection): string {
    return `${connection.farmId}\n${connection.claim!.host}`;
  }

  private unindexHost(connection: AgentConnection): void {
    if (!connection.claim) return;
    const key = AgentServer.hostKey(connection);
    if (this.byHost.get(key) === connection) this.byHost.delete(key);
  }

  /** A newer local connection took a host: older ones for it are superseded now, not at their next renewal. */
  supersedeOthers(newer: AgentConnection): void {
    const key = AgentServer.hostKey(newer);
    const held = this.byHost.get(key);
    if (held !== undefined && held !== newer) held.superseded();
    this.byHost.set(key, newer);
  }

  /**
   * Stops taking agents, lets each finish the frame it is applying, hands each host's lease over
   * (renewed once more and kept, so a planned restart shows no host down: docs/design.md §2
   * rule 10), then closes them (1001).
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    // Hosts not yet asked to resend are asked by the next collector, after their agents' hello.
    this.rebuilds.stop();
    const all = [...this.connections];
    const settled = Promise.all(all.map((connection) => connection.settled()));
    await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    // All keep their leases at close. Each is closed as soon as its lease is renewed, so its agent's
    // spread delay starts at once rather than after every renewal; the oldest leases first, so that
    // those not reached in time are the freshest, closed with their leases as they are (which lapse
    // no later than they would have).
    for (const connection of all) connection.keepLeaseAtClose();
    all.sort((a, b) => a.renewedAt - b.renewedAt);
    const closed = all.map((connection) => new Promise<void>((resolve) => connection.onClose(resolve)));
    let late = false;
    const handedOver = eachLimited(all, HAND_OVER_CONCURRENCY, async (connection) => {
      if (late) return;
      await connection.renewBeforeHandOver();
      connection.close(CloseCode.goingAway, 'collector shutting down');
    });
    await Promise.race([handedOver, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    late = true;
    for (const connection of all) connection.close(CloseCode.goingAway, 'collector shutting down');
    await Promise.race([Promise.all(closed), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    for (const connection of this.connections) connection.terminate();
    await Promise.all(this.releases);
    this.refusals.stop();
    this.identityRefusals.stop();
    this.quotaRefusals.stop();
    this.wss.close();
  }
}
