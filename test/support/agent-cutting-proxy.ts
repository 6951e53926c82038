/**
 * A TCP proxy between an agent and a collector that, on command, cuts the connection in the middle
 * of what the agent is sending: it forwards only the first half of the next large chunk, then
 * destroys both sockets, as a dying NAT or a pulled cable would. Everything else is forwarded as is.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Cut {
  /** Size of the chunk that was cut. */
  chunkBytes: number;
  /** How much of it reached the collector's side. */
  forwardedBytes: number;
}

interface Armed {
  minBytes: number;
  resolve: (cut: Cut) => void;
}

export class CuttingProxy {
  /** Client connections accepted so far. */
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private armed: Armed | undefined;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Listens on a free port of 127.0.0.1, forwarding to `targetPort` there. */
  static async start(targetPort: number): Promise<CuttingProxy> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    const proxy = new CuttingProxy(server, typeof address === 'object' && address ? address.port : 0);
    // No client can connect before this: the port is known only once start() returns.
    server.on('connection', (client) => proxy.accept(client, targetPort));
    return proxy;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /**
   * Arms a cut: the next chunk from a client of at least `minBytes` is forwarded only in half, then
   * both sockets are destroyed. Resolves once that happened; later traffic is forwarded normally.
   */
  cutNextChunk(minBytes = 1024): Promise<Cut> {
    if (this.armed) throw new Error('a cut is already armed');
    return new Promise((resolve) => (this.armed = { minBytes, resolve }));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, targetPort: number): void {
    this.connections += 1;
    const upstream = connect(targetPort, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    let cut = false;
    const destroyBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', destroyBoth);
      socket.on('close', () => {
        this.sockets.delete(socket);
        destroyBoth();
      });
    }
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    client.on('data', (chunk: Buffer) => {
      if (cut) return;
      const armed = this.armed;
      if (armed && chunk.length >= armed.minBytes) {
        this.armed = undefined;
        cut = true;
        const half = chunk.subarray(0, Math.floor(chunk.length / 2));
        upstream.write(half, () => {
          destroyBoth();
          armed.resolve({ chunkBytes: chunk.length, forwardedBytes: half.length });
        });
        return;
      }
      // Writes before the upstream connects are queued by the socket.
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
  }
}
