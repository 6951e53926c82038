/**
 * `useRedis()`: a suite's own redis-server, started before its first test and stopped after its
 * last (with every client handed out), on a free port. Call it at the top of a test file, or inside
 * a `describe` for a server of that block alone:
 *
 *   const redis = useRedis();
 *   it('…', async () => { const c = await InProcessCollector.start(rawConfig(redis.url, …)); });
 *
 * The hooks are registered where it is called, so a file's own `afterAll` (stopping its collectors)
 * runs before the server stops (vitest runs after-hooks last-registered first).
 */
import { afterAll, beforeAll } from 'vitest';
import type { Redis } from 'ioredis';
import { RedisServer, type RedisServerOptions } from './redis-server.js';

export class SuiteRedis {
  private started: RedisServer | undefined;
  private readonly clients: Redis[] = [];

  /** The server; read it in a hook or a test, once the suite has started. */
  get server(): RedisServer {
    if (!this.started) throw new Error('useRedis(): the server starts in beforeAll; read it in a hook or a test');
    return this.started;
  }

  get url(): string {
    return this.server.url;
  }

  get port(): number {
    return this.server.port;
  }

  /** A client for the test's own checks, disconnected after the suite (quitting it sooner is fine). */
  client(): Redis {
    const client = this.server.client();
    // A test that kills or freezes the server must not fail on the client's reconnect errors.
    client.on('error', () => undefined);
    this.clients.push(client);
    return client;
  }

  /** Kills the server at once (SIGKILL): what it did not persist is gone. */
  kill(): Promise<void> {
    return this.server.kill();
  }

  /** Starts it again on the same port. */
  restart(): Promise<void> {
    return this.server.restart();
  }

  /** Sends a signal (SIGSTOP freezes it, SIGCONT thaws it). */
  signal(signal: NodeJS.Signals): void {
    this.server.signal(signal);
  }

  /** @internal */
  async start(options: RedisServerOptions): Promise<void> {
    this.started = await RedisServer.start(options);
  }

  /** @internal */
  async stop(): Promise<void> {
    for (const client of this.clients.splice(0)) client.disconnect();
    await this.started?.stop();
    this.started = undefined;
  }
}

/** Starts a redis-server for the suite (or the `describe`) it is called in; see the file comment. */
export function useRedis(options: RedisServerOptions = {}): SuiteRedis {
  const redis = new SuiteRedis();
  beforeAll(() => redis.start(options));
  afterAll(() => redis.stop());
  return redis;
}
