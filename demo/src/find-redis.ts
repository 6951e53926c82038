/**
 * Finds a Redis for the demo: REDIS_URL if set, else 127.0.0.1:6379 if it answers, else a private
 * redis-server from PATH on a free port (stopped on exit), else says how to get one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

export interface FoundRedis {
  url: string;
  /** Where it came from, for the banner. */
  origin: string;
  stop(): Promise<void>;
}

export class NoRedisError extends Error {}

async function answers(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function startPrivate(): Promise<FoundRedis | undefined> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-demo-redis-'));
  let child: ChildProcess;
  try {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      {
        stdio: 'ignore',
      },
    );
  } catch {
    return undefined;
  }
  const failed = await new Promise<boolean>((resolve) => {
    child.once('error', () => resolve(true));
    child.once('spawn', () => resolve(false));
  });
  if (failed) {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  const url = `redis://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 100 && !(await answers(url)); attempt += 1) await sleep(50);
  return {
    url,
    origin: `private redis-server on port ${port} (stopped on exit)`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function findRedis(env: NodeJS.ProcessEnv): Promise<FoundRedis> {
  const none = { async stop() {} };
  if (env.REDIS_URL) {
    if (!(await answers(env.REDIS_URL))) throw new NoRedisError(`REDIS_URL=${env.REDIS_URL} does not answer PING.`);
    return { url: env.REDIS_URL, origin: 'REDIS_URL', ...none };
  }
  const local = 'redis://127.0.0.1:6379';
  if (await answers(local)) return { url: local, origin: 'the Redis on 127.0.0.1:6379', ...none };
  const started = await startPrivate();
  if (started) return started;
  throw new NoRedisError(
    [
      'rasmon needs Redis, and found none: REDIS_URL is not set, nothing answers on 127.0.0.1:6379,',
      'and there is no redis-server on the PATH. Any one of these will do:',
      '  sudo apt-get install redis-server        (Debian, Ubuntu)',
      '  brew install redis                       (macOS)',
      '  REDIS_URL=redis://host:6379 npm run demo (a Redis you already have)',
    ].join('\n'),
  );
}
