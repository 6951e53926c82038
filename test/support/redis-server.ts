/**
 * A private redis-server for one test suite, on a free port, so tests never depend on the
 * machine's Redis and can kill, restart or empty their own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';

export interface RedisServerOptions {
  /** Keep data on disk across restarts (AOF). Default: nothing kept, like the machine's Redis. */
  persistent?: boolean;
  /** The server's environment (a shifted clock: test/support/fake-clock.ts). Default: this process's. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Resolves once the redis-server `child` answers on `port`. The one answering must be this server,
 * not one that held the port first: this one then exits, and whether its exit or the other's answer
 * is seen first must not change the error.
 */
async function untilOwnServerAnswers(child: ChildProcess, port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const pid = await answeringPid(port);
    if (pid === child.pid) return;
    if (pid !== undefined) throw new Error(`port ${port} is held by another redis-server (process ${pid})`);
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} on port ${port}`);
    await sleep(50);
  }
  throw new Error(`redis-server did not answer on port ${port}`);
}

/** The process id of the redis-server answering on `port`, if one answers. */
async function answeringPid(port: number): Promise<number | undefined> {
  // Bounded: a server that accepts but does not answer (frozen with SIGSTOP) counts as none.
  const probe = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: 2000,
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    const info = await probe.info('server');
    const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
    return Number.isInteger(pid) ? pid : -1;
  } catch {
    return undefined;
  } finally {
    probe.disconnect();
  }
}

export class RedisServer {
  private process: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'rasmon-redis-'));

  private constructor(
    readonly port: number,
    private readonly options: RedisServerOptions,
  ) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options);
    await server.launch();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** A client for the test's own checks; the caller quits it. */
  client(): Redis {
    return new Redis(this.port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 });
  }

  private async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', ''];
    args.push('--appendonly', this.options.persistent ? 'yes' : 'no');
    const child = spawn('redis-server', args, { stdio: 'ignore', env: this.options.env ?? process.env });
    this.process = child;
    try {
      await untilOwnServerAnswers(child, this.port);
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** Kills the server at once (SIGKILL): what it did not persist is gone. */
  async kill(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Sends a signal (SIGSTOP freezes it: it stops answering without closing its sockets). */
  signal(signal: NodeJS.Signals): void {
    this.process?.kill(signal);
  }

  /** Starts it again on the same port. */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A three-master Redis Cluster on free ports, for tests of the `{farm}` hash tags. */
export class RedisCluster {
  private constructor(readonly nodes: RedisClusterNode[]) {}

  /** Its nodes started and joined; a cluster that cannot be made leaves no node running. */
  static async start(masters = 3): Promise<RedisCluster> {
    const started = await Promise.allSettled(Array.from({ length: masters }, () => RedisClusterNode.start()));
    const nodes = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    try {
      const failed = started.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      await RedisCluster.join(nodes);
    } catch (err) {
      await Promise.all(nodes.map((node) => node.stop()));
      throw err;
    }
    return new RedisCluster(nodes);
  }

  private static async join(nodes: RedisClusterNode[]): Promise<void> {
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        'redis-cli',
        ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'],
        {
          stdio: 'ignore',
        },
      );
      child.once('error', reject);
      child.once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create exited ${code}`)),
      );
    });
    const probe = new Redis(nodes[0]!.port, '127.0.0.1');
    try {
      for (let attempt = 0; ; attempt += 1) {
        const info = await probe.cluster('INFO');
        if (String(info).includes('cluster_state:ok')) break;
        if (attempt > 200) throw new Error('cluster did not reach cluster_state:ok');
        await sleep(50);
      }
    } finally {
      probe.disconnect();
    }
  }

  get addresses(): string[] {
    return this.nodes.map((node) => `127.0.0.1:${node.port}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
  }
}

class RedisClusterNode {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {}

  static async start(): Promise<RedisClusterNode> {
    // The cluster bus gets a port of its own too: by default it is the node's port + 10000, which
    // may be another worker's or one the kernel hands out (test/support/free-port.ts).
    const [port, busPort] = [await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), 'rasmon-cluster-'));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'];
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(busPort));
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    const node = new RedisClusterNode(port, dir, child);
    try {
      await untilOwnServerAnswers(child, port);
    } catch (err) {
      await node.stop();
      throw err;
    }
    return node;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
