/** The agent's own metrics, on a private registry, served on an optional local /metrics. */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MISLABELLED_DEFAULTS } from '@rasmon/protocol/kit';

/** What `rasmon_agent_build_info` tells about this agent. */
export interface AgentBuild {
  version: string;
  source: string;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly buildInfo = new Gauge({
    name: 'rasmon_agent_build_info',
    help: "The agent's version, the Node.js version it runs on and its session source; always 1",
    labelNames: ['version', 'node_version', 'source'],
    registers: [this.registry],
  });
  readonly connected = new Gauge({
    name: 'rasmon_agent_connected',
    help: '1 while welcomed by a collector',
    registers: [this.registry],
  });
  readonly sessions = new Gauge({
    name: 'rasmon_agent_sessions',
    help: 'Sessions in the last list read',
    registers: [this.registry],
  });
  readonly adminUnknown = new Gauge({
    name: 'rasmon_agent_sessions_admin_unknown',
    help: 'Sessions in the last list whose administrator status could not be read (their token did not answer); they count as non-admin, consuming',
    registers: [this.registry],
  });
  readonly spoolEvents = new Gauge({
    name: 'rasmon_agent_spool_events',
    help: 'Events spooled and not yet acked',
    registers: [this.registry],
  });
  readonly spoolBytes = new Gauge({
    name: 'rasmon_agent_spool_bytes',
    help: 'Bytes of events spooled and not yet acked',
    registers: [this.registry],
  });
  readonly spoolDropped = new Counter({
    name: 'rasmon_agent_spool_dropped_total',
    help: 'Events lost: dropped from a full spool, corrupt or torn on disk, set aside with a corrupt state, or larger than any frame',
    registers: [this.registry],
  });
  readonly spoolWriteErrors = new Counter({
    name: 'rasmon_agent_spool_write_errors_total',
    help: 'Writes to the spool directory that failed (full disk, I/O error); their events are held in memory',
    registers: [this.registry],
  });
  readonly lastAck = new Gauge({
    name: 'rasmon_agent_last_ack_timestamp_seconds',
    help: 'Last ack from the collector',
    registers: [this.registry],
  });
  readonly pollDuration = new Histogram({
    name: 'rasmon_agent_poll_duration_seconds',
    help: 'Duration of one read of the session source',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly pollErrors = new Counter({
    name: 'rasmon_agent_poll_errors_total',
    help: 'Failed reads of the session source',
    registers: [this.registry],
  });

  constructor(build?: AgentBuild) {
    if (build)
      this.buildInfo.set({ version: build.version, node_version: process.versions.node, source: build.source }, 1);
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISLABELLED_DEFAULTS) this.registry.removeSingleMetric(name);
  }

  /** Serves /metrics on host:port; resolves once listening. */
  async serve(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server;
  }
}
