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
import { AgentServer } from './agent-server.js';
import { Api } from './api.js';
import { configHash, type CollectorConfig, type FarmConfig } from './config.js';
import { FarmClock } from './farm-clock.js';
import { FarmReader } from './farm-reader.js';
import { FarmSeries } from './farm-series.js';
import { LicenseEngine } from './license-engine.js';
import { createLogger, type Logger } from './logger.js';
import { CollectorMetrics } from './metrics.js';
import { createRedis } from './redis-client.js';
import { RedisKeys } from './redis-keys.js';
import { defineScripts, loadScripts } from './scripts.js';
import { StatusPage } from './status-page.js';
import { VERSION } from './version.js';

export interface CollectorOptions {
  config: CollectorConfig;
  log?: Logger;
  /** How often time-driven rules run; 1000 ms unless a test wants otherwise. */
  tickMs?: number;
}

export class Collector {
  readonly metrics = new CollectorMetrics(VERSION);
  readonly log: Logger;
  private config: CollectorConfig;
  private readonly redis: Redis | Cluster;
  private readonly scriptSources: string[];
  private scriptsLoaded = false;
  private readonly keys: RedisKeys;
  private readonly engine: LicenseEngine;
  private readonly reader: FarmReader;
  private readonly farmSeries: FarmSeries;
  private readonly clock: FarmClock;
  private readonly agents: AgentServer;
  private readonly api: Api;
  private readonly page = new StatusPage();
  private readonly server: Server;
  private draining = false;

  private constructor(options: CollectorOptions) {
    this.config = options.config;
    this.log = options.log ?? createLogger();
    const config = this.config;
    this.keys = new RedisKeys(config.redis.prefix);
    this.redis = createRedis(config.redis);
    this.scriptSources = defineScripts(this.redis);
    this.engine = new LicenseEngine(this.redis, this.keys, leaseMs(config.heartbeatSeconds), config.limits.maxSessions);
    this.reader = new FarmReader(this.redis, this.keys);
    this.farmSeries = new FarmSeries(this.reader);
    const collectorId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.clock = new FarmClock({
      engine: this.engine,
      log: this.log.child({ module: 'clock' }),
      farms: () => this.config.farms,
      hostRetireSeconds: config.hostRetireSeconds,
      onEpochChange: (farm, epoch) => this.resyncFarm(farm, epoch),
      onRound: (ok) => this.metrics.redisUp.set(ok && this.redis.status === 'ready' ? 1 : 0),
      ...(options.tickMs === undefined ? {} : { intervalMs: options.tickMs }),
    });
    this.agents = new AgentServer({
      collectorId,
      log: this.log.child({ module: 'agents' }),
      context: {
        engine: this.engine,
        metrics: this.metrics,
        limits: config.limits,
        heartbeatSeconds: config.heartbeatSeconds,
        farm: (id) => this.farm(id),
        epoch: (farm) => this.clock.epoch(farm),
        epochLost: async (farm) => void (await this.clock.check(farm)),
        claimed: (connection) => this.agents.supersedeOthers(connection),
      },
    });
    this.api = new Api({ redis: this.redis, keys: this.keys, reader: this.reader, config: () => this.config });
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.route(req, res);
    this.server = config.tls
      ? createHttpsServer(
          {
            cert: readFileSync(config.tls.cert),
            key: readFileSync(config.tls.key),
            ...(config.tls.ca ? { ca: readFileSync(config.tls.ca), requestCert: true, rejectUnauthorized: true } : {}),
          },
          handler,
        )
      : createHttpServer(handler);
    this.server.on('upgrade', (req, socket, head) => this.agents.handleUpgrade(req, socket, head));
    this.metrics.setConfigHash(configHash(config));
    this.agents.setFarms(config.farms);
    this.log.info({ collectorId, farms: config.farms.map((farm) => farm.id), version: VERSION }, 'collector starting');
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
    const { host, port } = this.config.listen;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.agents.start();
    this.clock.start();
    const address = this.address;
    this.log.info({ listen: `${address.address}:${address.port}` }, 'collector listening');
  }

  private async onRedisReady(): Promise<void> {
    try {
      await loadScripts(this.redis, this.scriptSources);
      this.scriptsLoaded = true;
      this.metrics.redisUp.set(1);
      this.log.info('redis ready, scripts loaded');
    } catch (err) {
      this.log.error({ err }, 'redis refused the scripts');
    }
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Answers /readyz: Redis answers, the scripts are loaded, and the collector is not draining. */
  get ready(): boolean {
    return !this.draining && this.scriptsLoaded && this.redis.status === 'ready';
  }

  private farm(id: string): FarmConfig | undefined {
    return this.config.farms.find((farm) => farm.id === id);
  }

  /** SIGHUP: new farms, seats, expiry and tokens; connections whose token was revoked are closed. */
  reload(config: CollectorConfig): void {
    const restartOnly = ['listen', 'redis', 'heartbeatSeconds', 'hostRetireSeconds', 'limits', 'tls'] as const;
    const ignored = restartOnly.filter((key) => JSON.stringify(config[key]) !== JSON.stringify(this.config[key]));
    if (ignored.length > 0) this.log.warn({ keys: ignored }, 'these settings change only with a restart');
    this.config = { ...this.config, api: config.api, farms: config.farms };
    this.clock.retain(config.farms);
    this.agents.setFarms(config.farms);
    this.metrics.setConfigHash(configHash(this.config));
    this.log.info({ farms: config.farms.map((farm) => farm.id) }, 'configuration reloaded');
  }

  /** The farm's data was lost: take its hosts again and ask each of its agents here for a snapshot. */
  private async resyncFarm(farm: string, epoch: string): Promise<void> {
    await Promise.all(
      this.agents.claimedConnections(farm).map((connection) =>
        connection.reclaim(epoch).catch((err: Error) => this.log.warn({ err, conn: connection.id }, 'could not resync agent')),
      ),
    );
  }

  /** The farm series for /metrics; none when Redis cannot answer (redis_up says why). */
  private async farmMetrics(): Promise<string> {
    try {
      const text = await this.farmSeries.render(this.config.farms);
      this.metrics.redisUp.set(1);
      return text;
    } catch (err) {
      // A failed read must not fail the scrape: farm series go away and redis_up says why.
      this.log.warn({ err }, 'could not read farm state for /metrics');
      this.farmSeries.clear();
      this.metrics.redisUp.set(0);
      return '';
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://collector').pathname;
    try {
      if (path === '/metrics') {
        const farms = await this.farmMetrics();
        const body = farms + (await this.metrics.registry.metrics());
        res.writeHead(200, { 'Content-Type': this.metrics.registry.contentType });
        res.end(body);
      } else if (path === '/healthz') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok\n');
      } else if (path === '/readyz') {
        const ready = this.ready;
        res.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain' });
        res.end(ready ? 'ready\n' : `not ready: ${this.notReadyReason()}\n`);
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

  /** SIGTERM: stop taking agents, finish frames in flight, close agents, release leases, stop. */
  async drain(timeoutMs = 10_000): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.log.info({ agents: this.agents.size }, 'draining');
    await this.agents.drain(timeoutMs);
    await this.clock.stop();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.redis.quit().catch(() => this.redis.disconnect());
    this.log.info('collector stopped');
  }
}
