/**
 * The collector process: HTTP server (agents, metrics, health, API), Redis, and the clock that
 * applies time-driven rules. Holds only sockets; all farm state lives in Redis.
 */
import { leaseMs } from '@rasmon/protocol';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { AgentServer } from './ingest/agent-server.js';
import { ClientAddress } from './ingest/client-address.js';
import { acceptProxyProtocol } from './ingest/proxy-listener.js';
import { PROXY_HEADER_LOG, RefusalLog } from './ingest/refusal-log.js';
import { BrokerPollers } from './ingest/broker-poller.js';
import { FarmBudgets } from './ingest/farm-budget.js';
import { Api } from './api/api.js';
import { ConfigError, configHash, type CollectorConfig } from './config/config.js';
import { FarmDirectory } from './config/farm-directory.js';
import { farmQuotas } from './config/farm-quotas.js';
import { FarmClock } from './engine/farm-clock.js';
import { FarmReader } from './engine/farm-reader.js';
import { FarmSeriesThread } from './metrics/farm-series-thread.js';
import { LicenseEngine } from './engine/license-engine.js';
import { serializeError } from '@rasmon/protocol/kit';
import { createLogger, type Logger } from './logger.js';
import { CollectorMetrics, writeRefusalOf, type RedisWriteRefusal } from './metrics/metrics.js';
import { createRedis } from './engine/redis-client.js';
import { RedisKeys } from './engine/redis-schema.js';
import { defineScripts, loadScripts } from './engine/scripts.js';
import { StatusPage } from './api/status-page.js';
import { FarmDocumentThread } from './api/farm-document-thread.js';
import { FrameParseThread } from './ingest/frame-parse-thread.js';
import { AllowedHosts, defaultAllowedHosts } from './api/allowed-hosts.js';
import { VERSION } from './version.js';

const READ_ONLY_PATHS = new Set(['/metrics', '/healthz', '/readyz']);
/** Paths answered whatever the Host header says (docs/design.md §6): no user names behind them. */
const ANY_HOST_PATHS = new Set(['/metrics', '/healthz', '/readyz']);
const HEALTH_PATHS = new Set(['/healthz', '/readyz']);
const READY_PROBE_TIMEOUT_MS = 1000;
/** How often Redis's memory is read (INFO memory). */
const MEMORY_READ_EVERY_MS = 5000;

/**
 * The path of a request target, or undefined when it is not an origin-form path: `//evil/api/...`
 * would otherwise be read as host `evil`, path `/api/...`, and slip past a proxy rule on `/api`.
 */
export function requestPath(target: string | undefined): string | undefined {
  if (target === undefined || !target.startsWith('/') || target.startsWith('//')) return undefined;
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}

/** The HTTPS server; a file that is not usable PEM is a configuration error naming the key. */
function tlsServer(
  tls: NonNullable<CollectorConfig['tls']>,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Server {
  try {
    return createHttpsServer(
      {
        cert: readFileSync(tls.cert),
        key: readFileSync(tls.key),
        ...(tls.ca ? { ca: readFileSync(tls.ca), requestCert: true, rejectUnauthorized: true } : {}),
      },
      handler,
    );
  } catch (err) {
    const reason = ((err as Error).message.split('\n')[0] ?? '').slice(0, 200);
    throw new ConfigError(`tls: cannot use the certificate, key or CA (${reason})`, { key: 'tls', cause: err });
  }
}

/** Whether a listen address takes connections from this machine only. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export interface CollectorOptions {
  config: CollectorConfig;
  log?: Logger;
  /** How often time-driven rules run; 1000 ms unless a test wants otherwise. */
  tickMs?: number;
  /** Items per script of a big snapshot (SNAPSHOT_SLICE_ITEMS unless a test wants otherwise). */
  snapshotSliceItems?: number | undefined;
}

export class Collector {
  readonly metrics = new CollectorMetrics(VERSION);
  readonly log: Logger;
  private config: CollectorConfig;
  /** The farms of the running configuration; replaced whole by a reload. */
  private farms: FarmDirectory;
  private readonly redis: Redis | Cluster;
  private readonly scriptSources: string[];
  private scriptsLoaded = false;
  private readonly keys: RedisKeys;
  private readonly engine: LicenseEngine;
  private readonly reader: FarmReader;
  private readonly farmSeries: FarmSeriesThread;
  private readonly clock: FarmClock;
  private readonly agents: AgentServer;
  private readonly brokers: BrokerPollers;
  private readonly api: Api;
  private readonly documents: FarmDocumentThread;
  /** Parses agents' big frames off the agents' thread. */
  private readonly frames = new FrameParseThread();
  private readonly page = new StatusPage();
  private readonly allowedHosts: AllowedHosts;
  private readonly server: Server;
  /** Connections destroyed for their PROXY header (`http.proxyProtocol`), logged without addresses. */
  private proxyRefusals: RefusalLog | undefined;
  /** One render of the farm series at a time, shared by every scrape that arrives while it runs. */
  private farmBody: Promise<Buffer> | undefined;
  private httpInFlight = 0;
  private memoryReadAt = 0;
  private draining = false;

  private constructor(options: CollectorOptions) {
    this.config = options.config;
    this.farms = new FarmDirectory(options.config.farms);
    // Whatever logger is passed, errors are logged without the Redis arguments they carry.
    this.log = (options.log ?? createLogger()).child({}, { serializers: { err: serializeError } });
    const config = this.config;
    this.keys = new RedisKeys(config.redis.prefix);
    this.redis = createRedis(config.redis);
    this.scriptSources = defineScripts(this.redis);
    this.engine = new LicenseEngine(
      this.redis,
      this.keys,
      () => this.farms,
      leaseMs(config.heartbeatSeconds),
      config.limits.maxSessions,
      () => this.config.distinctUsers.retentionMonths,
      options.snapshotSliceItems,
    );
    this.reader = new FarmReader(this.redis, this.keys);
    this.farmSeries = new FarmSeriesThread(config.redis);
    const collectorId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.clock = new FarmClock({
      engine: this.engine,
      log: this.log.child({ module: 'clock' }),
      farms: () => this.farms,
      hostRetireSeconds: config.hostRetireSeconds,
      onRound: (ok) => void this.afterRound(ok),
      onEpochChange: (farm, epoch) => {
        this.engine.forgetMonthUsersWritten(farm);
        return this.agents.epochChanged(farm, epoch);
      },
      ...(options.tickMs === undefined ? {} : { intervalMs: options.tickMs }),
    });
    this.agents = new AgentServer({
      collectorId,
      limits: config.limits,
      trustedProxies: config.http.trustedProxies,
      log: this.log.child({ module: 'agents' }),
      context: {
        engine: this.engine,
        metrics: this.metrics,
        limits: {
          maxFrameBytes: config.limits.maxFrameBytes,
          maxEvents: config.limits.maxEvents,
          maxSessions: config.limits.maxSessions,
        },
        rates: {
          framesPerSecond: config.limits.framesPerSecondPerConnection,
          bytesPerSecond: config.limits.bytesPerSecondPerConnection,
        },
        budgets: new FarmBudgets(config.limits.bytesPerSecondPerFarm, config.limits.applyMillisecondsPerSecondPerFarm),
        frames: this.frames,
        heartbeatSeconds: config.heartbeatSeconds,
        farms: () => this.farms,
        epochs: this.clock,
        claimed: (connection) => this.agents.supersedeOthers(connection),
      },
    });
    this.brokers = new BrokerPollers({
      redis: this.redis,
      keys: this.keys,
      engine: this.engine,
      farms: () => this.farms,
      epochs: this.clock,
      metrics: this.metrics,
      log: this.log.child({ module: 'broker' }),
      collectorId,
    });
    this.documents = new FarmDocumentThread(config.redis);
    this.api = new Api({
      documents: this.documents,
      redis: this.redis,
      keys: this.keys,
      reader: this.reader,
      config: () => this.config,
      farms: () => this.farms,
    });
    const handler = (req: IncomingMessage, res: ServerResponse) => this.admit(req, res);
    this.server = config.tls ? tlsServer(config.tls, handler) : createHttpServer(handler);
    this.server.on('upgrade', (req, socket, head) => this.agents.handleUpgrade(req, socket, head));
    if (config.http.proxyProtocol) {
      const balancers = new ClientAddress(config.http.trustedProxies);
      this.proxyRefusals = new RefusalLog(this.log.child({ module: 'agents' }), PROXY_HEADER_LOG);
      acceptProxyProtocol(this.server, {
        trusted: (peer) => balancers.isTrusted(peer),
        // Like a request's headers: whole within the HTTP timeout.
        timeoutMs: config.limits.httpTimeoutSeconds * 1000,
        refused: (reason) => {
          this.metrics.proxyHeaderRefused.inc({ reason });
          this.proxyRefusals?.refused(reason, 'load balancer', 'destroyed');
        },
      });
    }
    // Past this many sockets the kernel's file descriptors would run out for everyone, /readyz too.
    this.server.maxConnections = config.limits.maxConnections;
    this.server.headersTimeout = config.limits.httpTimeoutSeconds * 1000;
    this.server.requestTimeout = config.limits.httpTimeoutSeconds * 1000;
    this.metrics.setConfigHash(configHash(config));
    this.allowedHosts = new AllowedHosts(config.http.allowedHosts ?? defaultAllowedHosts(config.listen.host));
    this.metrics.setFarms(config.farms.map((farm) => farm.id));
    // Read at each scrape: seats adopted from RAS move a farm's default quotas.
    this.metrics.quotaSource = () => this.farms.list().map((farm) => ({ farm: farm.id, ...farmQuotas(farm) }));
    this.log.info({ collectorId, farms: config.farms.map((farm) => farm.id), version: VERSION }, 'collector starting');
    this.warnUnboundFarms(config);
    if (config.api.tokensSha256.length === 0 && !isLoopback(config.listen.host)) {
      this.log.warn(
        { listen: `${config.listen.host}:${config.listen.port}` },
        'the API and the status page name users and client addresses and have no token: set api.tokensSha256',
      );
    }
  }

  /** Starts serving. Redis may still be unreachable: /readyz says so until it answers. */
  static async start(options: CollectorOptions): Promise<Collector> {
    const collector = new Collector(options);
    await collector.begin();
    return collector;
  }

  private async begin(): Promise<void> {
    this.redis.on('ready', () => void this.onRedisReady());
    this.redis.on('close', () => {
      this.scriptsLoaded = false;
      this.metrics.redisUp.set(0);
    });
    this.redis.on('error', (err: Error) => this.log.debug({ err }, 'redis connection error'));
    this.redis.connect().catch((err: Error) => this.log.warn({ err }, 'redis is not reachable yet; retrying'));
    this.farmSeries.start();
    const { host, port } = this.config.listen;
    await new Promise<void>((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => {
        const why =
          err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EACCES' ? 'not permitted' : err.message;
        reject(new ConfigError(`listen: cannot listen on ${host}:${port}: ${why}`, { key: 'listen', cause: err }));
      };
      this.server.once('error', failed);
      this.server.listen(port, host, () => {
        this.server.off('error', failed);
        resolve();
      });
    });
    this.agents.start();
    this.clock.start();
    this.brokers.start();
    const address = this.address;
    this.log.info({ listen: `${address.address}:${address.port}` }, 'collector listening');
  }

  private async onRedisReady(): Promise<void> {
    try {
      await loadScripts(this.redis, this.scriptSources);
      this.scriptsLoaded = true;
      this.metrics.redisUp.set(1);
      this.brokers.redisReady();
      this.log.info('redis ready, scripts loaded');
    } catch (err) {
      this.log.error({ err }, 'redis refused the scripts');
      return;
    }
    await this.sweepMonthUsers();
  }

  /**
   * Applies distinctUsers.retentionMonths to every farm's month sets already written (at Redis's
   * ready and at a reload that changes it): the months older than it deleted, the others' expiry
   * set from it. One pipeline per farm, one farm at a time.
   */
  private async sweepMonthUsers(): Promise<void> {
    const retentionMonths = this.config.distinctUsers.retentionMonths;
    let deleted = 0;
    let farms = 0;
    for (const farm of this.farms.list()) {
      try {
        deleted += (await this.engine.sweepMonthUsers(farm.id)).deleted;
        farms += 1;
      } catch (err) {
        this.log.warn({ err, farm: farm.id }, 'the distinct-user months could not be swept; retried at the next write');
      }
    }
    this.log.info({ retentionMonths, farms, deleted }, 'distinct-user months past the retention deleted');
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Answers /readyz: Redis answers, the scripts are loaded, and the collector is not draining. */
  get ready(): boolean {
    return !this.draining && this.scriptsLoaded && this.redis.status === 'ready';
  }

  /**
   * Polls the farm's RAS broker now (if this collector holds its lease) instead of at the next
   * period; false for a farm without a `ras` block.
   */
  pollBroker(farm: string): Promise<boolean> {
    return this.brokers.pollNow(farm);
  }

  /** SIGHUP: new farms, seats, expiry and tokens; connections whose token was revoked are closed. */
  reload(config: CollectorConfig): void {
    const restartOnly = ['listen', 'redis', 'heartbeatSeconds', 'hostRetireSeconds', 'limits', 'tls', 'http'] as const;
    const ignored = restartOnly.filter((key) => JSON.stringify(config[key]) !== JSON.stringify(this.config[key]));
    if (ignored.length > 0) this.log.warn({ keys: ignored }, 'these settings change only with a restart');
    const retentionChanged = config.distinctUsers.retentionMonths !== this.config.distinctUsers.retentionMonths;
    this.config = { ...this.config, api: config.api, farms: config.farms, distinctUsers: config.distinctUsers };
    this.farms = new FarmDirectory(config.farms, this.farms);
    this.clock.retain(this.farms);
    this.agents.farmsChanged();
    this.brokers.farmsChanged();
    this.metrics.setConfigHash(configHash(this.config));
    this.metrics.setFarms(config.farms.map((farm) => farm.id));
    this.log.info({ farms: config.farms.map((farm) => farm.id) }, 'configuration reloaded');
    this.warnUnboundFarms(config);
    if (retentionChanged) void this.sweepMonthUsers();
  }

  /** A farm with `hostBinding: none` lets any holder of its token speak for any of its hosts. */
  private warnUnboundFarms(config: CollectorConfig): void {
    for (const farm of config.farms) {
      if (farm.hostBinding !== 'none') continue;
      this.log.warn(
        { farm: farm.id },
        `farm ${farm.id} has hostBinding: none: any holder of its agent token can take over any of its hosts`,
      );
    }
  }

  /**
   * Every round of the clock: Redis must answer and take a write. Redis at maxmemory (OOM) or a
   * read-only replica answers PING but refuses every frame, so PING alone would lie.
   */
  private async afterRound(ok: boolean): Promise<void> {
    const problem = ok ? await this.probeRedis() : 'farm tick failed';
    await this.readRedisMemory();
    this.metrics.redisUp.set(problem === undefined && this.redis.status === 'ready' ? 1 : 0);
  }

  /**
   * PING and a write, within a second; undefined when both work, else why not. Sets
   * `redis_refusing_writes`, so that alerts tell a Redis that refuses writes from one that is gone.
   */
  private async probeRedis(): Promise<string | undefined> {
    const { problem, refusal } = await this.pingAndWrite();
    const effective = this.metrics.setRedisRefusingWrites(refusal);
    if (problem === undefined && effective !== undefined) return `redis refused a frame: ${effective.toUpperCase()}`;
    return problem;
  }

  /**
   * Redis's memory against its maxmemory, read every few rounds: `redis_memory_used_ratio` shows
   * the pressure before Redis refuses frames (RasCollectorRedisMemoryHigh).
   */
  private async readRedisMemory(): Promise<void> {
    const now = Date.now();
    if (now - this.memoryReadAt < MEMORY_READ_EVERY_MS || this.redis.status !== 'ready') return;
    this.memoryReadAt = now;
    try {
      const nodes =
        'nodes' in this.redis && typeof this.redis.nodes === 'function' ? this.redis.nodes('master') : [this.redis];
      let ratio: number | undefined;
      for (const node of nodes) {
        const info = await (node as Redis).info('memory');
        const used = Number(/^used_memory:(\d+)/m.exec(info)?.[1]);
        const max = Number(/^maxmemory:(\d+)/m.exec(info)?.[1]);
        if (max > 0 && Number.isFinite(used)) ratio = Math.max(ratio ?? 0, used / max);
      }
      if (ratio === undefined) this.metrics.redisMemoryUsedRatio.reset();
      else this.metrics.redisMemoryUsedRatio.set(ratio);
    } catch {
      // Not answered: redis_up says so.
    }
  }

  private async pingAndWrite(): Promise<{ problem: string | undefined; refusal?: RedisWriteRefusal }> {
    if (this.redis.status !== 'ready') return { problem: `redis ${this.redis.status}` };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all([this.redis.ping(), this.redis.set(this.keys.writeProbe, String(Date.now()), 'PX', 60_000)]),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('no answer within 1 s')), READY_PROBE_TIMEOUT_MS);
        }),
      ]);
      return { problem: undefined };
    } catch (err) {
      const message = (err as Error).message;
      const refusal = writeRefusalOf(message);
      if (refusal !== undefined) return { problem: `redis refuses writes: ${refusal.toUpperCase()}`, refusal };
      return { problem: `redis does not answer: ${message.slice(0, 100)}` };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Admission to the HTTP routes: a cap on requests at once, and a deadline for each response. */
  private admit(req: IncomingMessage, res: ServerResponse): void {
    const { maxHttpRequests, httpTimeoutSeconds } = this.config.limits;
    // Health checks are cheap and must answer while scrapes or API readers are held up.
    const capped = !HEALTH_PATHS.has(requestPath(req.url) ?? '');
    if (capped && this.httpInFlight >= maxHttpRequests) {
      res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '1', Connection: 'close' });
      res.end('busy\n');
      return;
    }
    if (capped) this.httpInFlight += 1;
    // A reader that does not read holds its response, and its memory, until this cuts it off.
    const deadline = setTimeout(() => res.destroy(), httpTimeoutSeconds * 1000);
    res.once('close', () => {
      if (capped) this.httpInFlight -= 1;
      clearTimeout(deadline);
    });
    void this.route(req, res);
  }

  /**
   * The farm part of /metrics, rendered once for all the scrapes waiting on it and shared as one
   * buffer (not one copy per socket); the process series, small, are rendered per scrape.
   */
  private farmText(): Promise<Buffer> {
    this.farmBody ??= this.farmMetrics().finally(() => (this.farmBody = undefined));
    return this.farmBody;
  }

  /** The farm series for /metrics; none when Redis cannot answer (redis_up says why). */
  private async farmMetrics(): Promise<Buffer> {
    try {
      // Not redis_up 1 here: a Redis that answers reads may still refuse writes; the clock's probe says.
      return await this.farmSeries.render(this.farms.list());
    } catch (err) {
      // A failed read must not fail the scrape: farm series go away and redis_up says why.
      this.log.warn({ err }, 'could not read farm state for /metrics');
      this.metrics.redisUp.set(0);
      return Buffer.alloc(0);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = requestPath(req.url);
    if (path === undefined) {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end('bad request path\n');
      return;
    }
    if (!ANY_HOST_PATHS.has(path) && !this.allowedHosts.allows(req.headers.host)) {
      res.writeHead(421, { 'Content-Type': 'text/plain' });
      res.end('this collector does not answer to that host name: add it to http.allowedHosts\n');
      return;
    }
    if (READ_ONLY_PATHS.has(path) && req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'Content-Type': 'text/plain', Allow: 'GET, HEAD' });
      res.end('only GET and HEAD\n');
      return;
    }
    try {
      if (path === '/metrics') {
        const farms = await this.farmText();
        const own = Buffer.from(await this.metrics.registry.metrics());
        res.writeHead(200, {
          'Content-Type': this.metrics.registry.contentType,
          'Content-Length': String(farms.length + own.length),
        });
        if (req.method === 'HEAD') {
          res.end();
        } else {
          res.write(farms);
          res.end(own);
        }
      } else if (path === '/healthz') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok\n');
      } else if (path === '/readyz') {
        const problem = this.ready ? await this.probeRedis() : this.notReadyReason();
        res.writeHead(problem === undefined ? 200 : 503, { 'Content-Type': 'text/plain' });
        res.end(problem === undefined ? 'ready\n' : `not ready: ${problem}\n`);
      } else if (!this.page.handle(req, res, path) && !(await this.api.handle(req, res, path))) {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found\n');
      }
    } catch (err) {
      this.log.error({ err, path }, 'request failed');
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('internal error\n');
    }
  }

  private notReadyReason(): string {
    if (this.draining) return 'draining';
    if (this.redis.status !== 'ready') return `redis ${this.redis.status}`;
    return 'scripts not loaded';
  }

  /** SIGTERM: stop taking agents, finish frames in flight, hand the hosts' leases over, close agents, stop. */
  async drain(timeoutMs = 10_000): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.log.info({ agents: this.agents.size }, 'draining');
    await this.agents.drain(timeoutMs);
    this.proxyRefusals?.stop();
    // The brokers are logged off, each within its request deadline; the drain waits at most 5 s for them.
    await Promise.race([this.brokers.stop(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    await this.clock.stop();
    await this.farmSeries.close();
    await this.documents.close();
    await this.frames.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.redis.quit().catch(() => this.redis.disconnect());
    this.log.info('collector stopped');
  }
}
