/**
 * The fleet part's probing agent, in a process of its own as a real agent is on a host of its own:
 * timing its acks in the process that holds the 10,000 idle agents would count that process's
 * stalls against the collector. Driven over the IPC channel by bench/fleet.ts:
 *   → { type: 'start' }            begin sending a one-event frame every 20 ms
 *   → { type: 'stop' }             stop, wait for the acks due, answer with what was timed
 *   ← { type: 'ready' }            connected, said hello and sent its snapshot
 *   ← { type: 'timed', latencies, worstPerSecond }
 * argv: collector URL, token, farm id.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { TestAgent, hostKeyOf } from '../test/support/agent-client.js';

const [url, token, farm] = process.argv.slice(2) as [string, string, string];

const agent = await TestAgent.connect(url, token);
await agent.hello(farm, 'probe', 'probe-stream', undefined, hostKeyOf(`${farm}/probe`));
await agent.snapshot(1, [
  { id: '1', user: 'corp\\probe', admin: false, kind: 'desktop', via: 'ras', state: 'active', since: 1 },
]);

let latencies: number[] = [];
/** Worst ack per second of the run, to show periodic spikes. */
let worstPerSecond: number[] = [];
let started = 0;
let seq = 1;
const sent = new Map<number, number>();
let timer: NodeJS.Timeout | undefined;

agent.socket.on('message', (data) => {
  const frame = JSON.parse(data.toString()) as { type: string; seq?: number };
  if (frame.type !== 'ack') return;
  for (const [s, at] of sent) {
    if (s > frame.seq!) break;
    const latency = Date.now() - at;
    latencies.push(latency);
    const second = Math.floor((at - started) / 1000);
    worstPerSecond[second] = Math.max(worstPerSecond[second] ?? 0, latency);
    sent.delete(s);
  }
});

function start(): void {
  latencies = [];
  worstPerSecond = [];
  started = Date.now();
  let active = true;
  timer = setInterval(() => {
    active = !active;
    seq += 1;
    sent.set(seq, Date.now());
    const session = {
      id: '1',
      user: 'corp\\probe',
      admin: false,
      kind: 'desktop',
      via: 'ras',
      state: active ? 'active' : 'disconnected',
      since: 1,
    };
    agent.send({ type: 'events', events: [{ seq, at: Date.now(), op: 'upsert', session }] });
  }, 20);
}

async function stop(): Promise<void> {
  clearInterval(timer);
  for (let i = 0; i < 200 && sent.size > 0; i += 1) await sleep(10);
  process.send!({ type: 'timed', latencies, worstPerSecond: Array.from(worstPerSecond, (n) => n ?? 0) });
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'start') start();
  else if (message.type === 'stop') void stop();
});
// The bench gone, nothing is left to probe for.
process.on('disconnect', () => process.exit(0));
process.send!({ type: 'ready' });
