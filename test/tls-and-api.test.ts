/**
 * TLS (server certificate, and client certificates when `tls.ca` is set) with certificates made by
 * openssl for the test, and the JSON API's bearer-token protection and error answers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { useRedis } from './support/use-redis.js';
import { InProcessCollector, rawConfig, sha256 } from './support/collector-harness.js';
import { TestAgent, session } from './support/agent-client.js';
import { pino } from 'pino';
import { Agent } from '@rasmon/agent';
import { Scrape, parseMetrics } from './support/prometheus-text.js';

const redis = useRedis();
let dir: string;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rasmon-tls-'));
  // A CA that signs the server's certificate (for 127.0.0.1) and one client's.
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=rasmon test CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  );
}, 60_000);

/** Signs the server's certificate with an IP SAN for 127.0.0.1, which TLS clients check. */
function signServer(): void {
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > san.cnf'], { cwd: dir });
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'san.cnf',
      '-out',
      'server.pem',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
}

function clientCert(): void {
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=rdsh-1', '-keyout', 'client.key', '-out', 'client.csr');
  openssl(
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    'client.pem',
  );
}

function wssAgent(url: string, options: Record<string, unknown>): Promise<WebSocket> {
  const socket = new WebSocket(`${url.replace(/^https/, 'wss')}/v1/agent`, ['rasmon.v1'], {
    headers: { Authorization: 'Bearer token-farm-a' },
    ...options,
  });
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('TLS', () => {
  beforeAll(() => {
    signServer();
    clientCert();
  });

  it('serves wss:// with the configured certificate, verified against its CA', async () => {
    const tls = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
    const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }], { tls }));
    const url = `https://127.0.0.1:${collector.collector.address.port}`;
    try {
      const socket = await wssAgent(url, { ca: readFileSync(join(dir, 'ca.pem')) });
      const welcome = await new Promise<any>((resolve) => {
        socket.once('message', (data) => resolve(JSON.parse(data.toString())));
        socket.send(JSON.stringify({ type: 'hello', farm: 'farm-a', host: 'rdsh-1', stream: 's' }));
      });
      expect(welcome.type).toBe('welcome');
      socket.close();
      // Without the CA the client refuses the self-made certificate.
      await expect(wssAgent(url, {})).rejects.toThrow(/certificate/);
    } finally {
      await collector.stop();
    }
  });

  it('with tls.ca set, an agent without a client certificate is refused and one with it is let in', async () => {
    const tls = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') };
    const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }], { tls }));
    const url = `https://127.0.0.1:${collector.collector.address.port}`;
    const ca = readFileSync(join(dir, 'ca.pem'));
    try {
      await expect(wssAgent(url, { ca })).rejects.toThrow();
      const socket = await wssAgent(url, {
        ca,
        cert: readFileSync(join(dir, 'client.pem')),
        key: readFileSync(join(dir, 'client.key')),
      });
      expect(socket.protocol).toBe('rasmon.v1');
      socket.close();
    } finally {
      await collector.stop();
    }
  });

  it('with hostIdentity certificate a hello may claim only a name of its client certificate (CN or DNS SAN, any case)', async () => {
    // A second client certificate whose CN is no host, with its host name as a DNS SAN.
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      '/CN=agent of rdsh-2',
      '-keyout',
      'san.key',
      '-out',
      'san.csr',
    );
    execFileSync('sh', ['-c', 'printf "subjectAltName=DNS:RDSH-2.corp.example,DNS:rdsh-2\\n" > client-san.cnf'], {
      cwd: dir,
    });
    openssl(
      'x509',
      '-req',
      '-in',
      'san.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'client-san.cnf',
      '-out',
      'san.pem',
    );
    const tls = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') };
    const collector = await InProcessCollector.start(
      rawConfig(redis.url, [{ id: 'farm-a', seats: 5, hostIdentity: 'certificate' }], { tls }),
    );
    const url = `https://127.0.0.1:${collector.collector.address.port}`;
    const ca = readFileSync(join(dir, 'ca.pem'));
    const withCert = (name: string) => ({
      ca,
      cert: readFileSync(join(dir, `${name}.pem`)),
      key: readFileSync(join(dir, `${name}.key`)),
    });
    /** The first frame answering a hello, and the close code when it is an error. */
    const hello = async (cert: string, host: string) => {
      const socket = await wssAgent(url, withCert(cert));
      const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
      const frame = await new Promise<any>((resolve) => {
        socket.once('message', (data) => resolve(JSON.parse(data.toString())));
        socket.send(JSON.stringify({ type: 'hello', farm: 'farm-a', host, stream: 's' }));
      });
      if (frame.type === 'welcome') socket.close();
      return { frame, code: await closed };
    };
    try {
      // client.pem's CN is rdsh-1.
      expect((await hello('client', 'RDSH-1')).frame.type).toBe('welcome');
      const refused = await hello('client', 'rdsh-2');
      expect(refused.frame).toEqual({
        type: 'error',
        code: 'forbidden',
        message: 'host rdsh-2 is not a name of this client certificate',
      });
      expect(refused.code).toBe(1008);
      expect((await hello('san', 'rdsh-2')).frame.type).toBe('welcome');
      expect((await hello('san', 'rdsh-2.corp.example')).frame.type).toBe('welcome');
      expect((await hello('san', 'rdsh-1')).frame.code).toBe('forbidden');
      const metrics = await new Promise<string>((resolve, reject) => {
        const req = request(`${url}/metrics`, withCert('client'), (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      expect(
        new Scrape(parseMetrics(metrics)).value('rasmon_collector_upgrades_rejected_total', {
          reason: 'certificate_name',
        }),
      ).toBe(2);
    } finally {
      await collector.stop();
    }
  });

  it('the agent connects over wss:// with a custom CA and a client certificate, and its sessions arrive', async () => {
    const tls = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') };
    const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }], { tls }), {
      tickMs: 100,
    });
    const sessions = [session('1', 'CORP\\alice'), session('2', 'CORP\\bob')];
    const agent = new Agent({
      source: { name: 'fixed', list: async () => sessions },
      spool: { dir: mkdtempSync(join(tmpdir(), 'rasmon-tls-spool-')), maxBytes: 1 << 20 },
      pollIntervalSeconds: 0.1,
      snapshotIntervalSeconds: 3600,
      log: pino({ level: 'silent' }),
      link: {
        url: `wss://127.0.0.1:${collector.collector.address.port}`,
        token: 'token-farm-a',
        farm: 'farm-a',
        host: 'rdsh-1',
        agent: 'rasmon-agent/test',
        ca: readFileSync(join(dir, 'ca.pem')),
        cert: readFileSync(join(dir, 'client.pem')),
        key: readFileSync(join(dir, 'client.key')),
      },
    });
    try {
      await agent.start();
      const url = `https://127.0.0.1:${collector.collector.address.port}`;
      const users = await vi.waitFor(
        async () => {
          const body = await new Promise<string>((resolve, reject) => {
            const req = request(
              `${url}/metrics`,
              {
                ca: readFileSync(join(dir, 'ca.pem')),
                cert: readFileSync(join(dir, 'client.pem')),
                key: readFileSync(join(dir, 'client.key')),
              },
              (res) => {
                let text = '';
                res.on('data', (chunk) => (text += chunk));
                res.on('end', () => resolve(text));
              },
            );
            req.on('error', reject);
            req.end();
          });
          const value = new Scrape(parseMetrics(body)).value('ras_license_users', { farm: 'farm-a' });
          expect(value).toBe(2);
          return value;
        },
        { timeout: 10_000 },
      );
      expect(users).toBe(2);
    } finally {
      await agent.stop();
      await collector.stop();
    }
  });

  it('/metrics is served over the same TLS port', async () => {
    const tls = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
    const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }], { tls }));
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: collector.collector.address.port,
            path: '/metrics',
            ca: readFileSync(join(dir, 'ca.pem')),
          },
          (res) => {
            let text = '';
            res.on('data', (chunk) => (text += chunk));
            res.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(body).toContain('ras_license_seats{farm="farm-a"} 5');
    } finally {
      await collector.stop();
    }
  });
});

describe('JSON API', () => {
  it('with api.tokensSha256 set, a request without one of those tokens gets 401', async () => {
    const collector = await InProcessCollector.start(
      rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }], { api: { tokensSha256: [sha256('api-secret')] } }),
    );
    try {
      expect((await fetch(`${collector.url}/api/v1/farms`)).status).toBe(401);
      const wrong = await fetch(`${collector.url}/api/v1/farms`, { headers: { Authorization: 'Bearer nope' } });
      expect(wrong.status).toBe(401);
      // An agent token is not an API token.
      const agentToken = await fetch(`${collector.url}/api/v1/farms`, {
        headers: { Authorization: 'Bearer token-farm-a' },
      });
      expect(agentToken.status).toBe(401);
      const ok = await fetch(`${collector.url}/api/v1/farms`, { headers: { Authorization: 'Bearer api-secret' } });
      expect(ok.status).toBe(200);
      expect(((await ok.json()) as any).farms[0].id).toBe('farm-a');
      // /metrics and health stay open for Prometheus and probes.
      expect((await fetch(`${collector.url}/metrics`)).status).toBe(200);
      expect((await fetch(`${collector.url}/healthz`)).status).toBe(200);
    } finally {
      await collector.stop();
    }
  });

  it('answers unknown farms and paths with 404 and other methods with 405, in JSON', async () => {
    const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }]));
    try {
      const missing = await fetch(`${collector.url}/api/v1/farms/nope`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: 'no farm nope' });
      expect((await fetch(`${collector.url}/api/v1/other`)).status).toBe(404);
      expect((await fetch(`${collector.url}/api/v1/farms`, { method: 'POST' })).status).toBe(405);
      expect((await fetch(`${collector.url}/nothing-here`)).status).toBe(404);
    } finally {
      await collector.stop();
    }
  });

  it('shows a farm with its hosts and connections, client included', async () => {
    const collector = await InProcessCollector.start(rawConfig(redis.url, [{ id: 'farm-a', seats: 5 }]));
    const agent = await TestAgent.connect(collector.url, 'token-farm-a');
    try {
      await agent.hello('farm-a', 'RDSH-1', 's', 'rasmon-agent/0.1.0');
      await agent.snapshot(1, [
        session('1', 'CORP\\Alice', { since: 1_700_000_000_000, client: { name: 'LAPTOP-7', address: '10.1.2.3' } }),
      ]);
      const detail = (await (await fetch(`${collector.url}/api/v1/farms/FARM-A`)).json()) as any;
      expect(detail.hosts).toEqual([
        expect.objectContaining({
          host: 'rdsh-1',
          up: true,
          retired: false,
          connections: 1,
          agent: 'rasmon-agent/0.1.0',
        }),
      ]);
      expect(detail.connections).toEqual([
        {
          host: 'rdsh-1',
          id: '1',
          user: 'corp\\alice',
          admin: false,
          kind: 'desktop',
          via: 'ras',
          state: 'active',
          since: '2023-11-14T22:13:20.000Z',
          client: { name: 'LAPTOP-7', address: '10.1.2.3' },
          exempt: false,
          consumes: true,
        },
      ]);
    } finally {
      await agent.close();
      await collector.stop();
    }
  });
});

describe('a big farm document', () => {
  it('pages its connections, gives every exempt desktop whatever the page, and refuses a bad page', async () => {
    const collector = await InProcessCollector.start(
      rawConfig(redis.url, [{ id: 'farm-p', seats: 3000 }], { limits: { maxSessions: 2000 } }),
    );
    try {
      for (const host of ['rdsh-1', 'rdsh-2']) {
        const agent = await TestAgent.connect(collector.url, 'token-farm-p');
        await agent.hello('farm-p', host);
        const sessions = Array.from({ length: 1250 }, (_, i) => session(`s${i}`, `corp\\${host}-user${i}`));
        // The last two of each host are admin desktops: exempt, and beyond the first page.
        sessions.push(
          session('admin-1', 'corp\\admin1', { admin: true }),
          session('admin-2', 'corp\\admin2', { admin: true }),
        );
        await agent.snapshot(1, sessions);
        await agent.close();
      }
      const get = async (query: string) => {
        const res = await fetch(`${collector.url}/api/v1/farms/farm-p${query}`);
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const first = await get('');
      expect(first.status).toBe(200);
      expect(first.body).toMatchObject({ connectionsTotal: 2504, connectionsOffset: 0, connectionsLimit: 1000 });
      expect((first.body.connections as unknown[]).length).toBe(1000);
      expect((first.body.exempt as Array<{ host: string }>).map((c) => c.host).sort()).toEqual([
        'rdsh-1',
        'rdsh-1',
        'rdsh-2',
        'rdsh-2',
      ]);
      const last = await get('?offset=2500&limit=10');
      expect((last.body.connections as Array<{ host: string }>).map((c) => c.host)).toEqual([
        'rdsh-2',
        'rdsh-2',
        'rdsh-2',
        'rdsh-2',
      ]);
      const ids = new Set<string>();
      for (let offset = 0; offset < 2504; offset += 1000) {
        for (const c of (await get(`?offset=${offset}`)).body.connections as Array<{ host: string; id: string }>)
          ids.add(`${c.host}/${c.id}`);
      }
      expect(ids.size).toBe(2504);
      for (const bad of ['?limit=0', '?limit=10001', '?offset=-1', '?limit=abc', '?offset=1e3'])
        expect((await get(bad)).status, bad).toBe(400);
    } finally {
      await collector.stop();
    }
  });
});
