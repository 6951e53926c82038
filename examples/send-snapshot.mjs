#!/usr/bin/env node
// Plays one agent by hand: connects to a collector as host rdsh-demo of farm-a (lab token) and
// sends a snapshot of three sessions, then an event that logs one of them off.
//   node examples/send-snapshot.mjs [http://127.0.0.1:9420]
import WebSocket from 'ws';

const base = (process.argv[2] ?? 'http://127.0.0.1:9420').replace(/^http/, 'ws');
const ws = new WebSocket(`${base}/v1/agent`, ['rasmon.v1'], {
  headers: { Authorization: 'Bearer lab-token-farm-a' },
});
const since = Date.now() - 3_600_000;
const session = (id, user, fields = {}) => ({
  id,
  user,
  admin: false,
  kind: 'desktop',
  via: 'ras',
  state: 'active',
  since,
  ...fields,
});

ws.on('unexpected-response', (_req, res) => {
  console.error(`collector refused the connection: HTTP ${res.statusCode}`);
  process.exit(1);
});
ws.on('error', (err) => {
  console.error(`cannot reach the collector at ${base}: ${err.message}`);
  process.exit(1);
});
ws.on('open', () =>
  ws.send(JSON.stringify({ type: 'hello', farm: 'farm-a', host: 'rdsh-demo', stream: `demo-${Date.now()}` })),
);
ws.on('message', (data) => {
  const frame = JSON.parse(data.toString());
  console.log('collector:', JSON.stringify(frame));
  if (frame.type === 'welcome') {
    ws.send(
      JSON.stringify({
        type: 'snapshot',
        seq: 1,
        at: Date.now(),
        sessions: [
          session('1', 'CORP\\alice'),
          session('2', 'corp\\bob', { state: 'disconnected' }),
          session('3', 'corp\\admin', { admin: true }),
        ],
      }),
    );
  } else if (frame.type === 'ack' && frame.seq === 1) {
    ws.send(JSON.stringify({ type: 'events', events: [{ seq: 2, at: Date.now(), op: 'end', id: '2' }] }));
  } else if (frame.type === 'ack' && frame.seq === 2) {
    ws.close(1000);
  }
});
