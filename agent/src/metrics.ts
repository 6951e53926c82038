/** The agent's own metrics, on a private registry, served on an optional local /metrics. */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, registerProcessMetrics } from './metric-registry.js';

/** What `rasmon_agent_build_info` tells about this agent. */
export interface AgentBuild {
  version: string;
  source: string;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly buildInfo = new Gauge(
    'rasmon_agent_build_info',
    "The agent's version, the Node.js version it runs on and its session source; always 1",
    this.registry,
    { labelled: true },
  );
  readonly connected = new Gauge('rasmon_agent_connected', '1 while welcomed by a collector', this.registry);
  readonly sessions = new Gauge('rasmon_agent_sessions', 'Sessions in the last list read', this.registry);
  readonly adminUnknown = new Gauge(
    'rasmon_agent_sessions_admin_unknown',
    'Sessions in the last list whose administrator status could not be read (their token did not answer); they count as non-admin, consuming',
    this.registry,
  );
  readonly spoolEvents = new Gauge('rasmon_agent_spool_events', 'Events spooled and not yet acked', this.registry);
  readonly spoolBytes = new Gauge(
    'rasmon_agent_spool_bytes',
    'Bytes of events spooled and not yet acked',
    this.registry,
  );
  readonly spoolDropped = new Counter(
    'rasmon_agent_spool_dropped_total',
    'Events lost: dropped from a full spool, corrupt or torn on disk, set aside with a corrupt state, or larger than any frame',
    this.registry,
  );
  readonly spoolWriteErrors = new Counter(
    'rasmon_agent_spool_write_errors_total',
    'Writes to the spool directory that failed (full disk, I/O error); their events are held in memory',
    this.registry,
  );
  readonly lastAck = new Gauge('rasmon_agent_last_ack_timestamp_seconds', 'Last ack from the collector', this.registry);
  readonly pollDuration = new Histogram(
    'rasmon_agent_poll_duration_seconds',
    'Duration of one read of the session source',
    [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    this.registry,
  );
  readonly pollErrors = new Counter(
    'rasmon_agent_poll_errors_total',
    'Failed reads of the session source',
    this.registry,
  );

  constructor(build?: AgentBuild) {
    if (build)
      this.buildInfo.set({ version: build.version, node_version: process.versions.node, source: build.source }, 1);
    registerProcessMetrics(this.registry);
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
