/**
 * `freePort()`: a loopback port for a server a test (or the bench) starts, which no other test worker
 * and no port the kernel hands out can take before the server binds it.
 *
 * A port the kernel picked for a listen on port 0 and then released is free only for a moment: the
 * other test worker's next listen on port 0 (an in-process collector) or its next `freePort()` may be
 * given it too. Whichever server binds second fails, and a test that polls the port for readiness
 * then talks to the other worker's server (its collector, with the same farm names and tokens). So the
 * ports come from outside the kernel's ephemeral range (`ip_local_port_range`: below it, or above it
 * where it leaves more room there), which it never hands out on its own, and each vitest worker
 * (`VITEST_POOL_ID`) has its own slice of them; a port of the slice that something still holds (a
 * server a previous file left) is skipped.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port handed out; the ones below are left to the machine's own services. */
const LOWEST_PORT = 20_000;
/** Slices of the ports: one per worker, vitest's worker ids being 1 to maxWorkers (0 outside vitest). */
const SLICES = 8;

/** The kernel's ephemeral range (Linux), 32768-60999 (its default) when it cannot be read. */
function ephemeralRange(): { low: number; high: number } {
  let text = '';
  try {
    text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    // not Linux: its default
  }
  const [low = NaN, high = NaN] = text.trim().split(/\s+/).map(Number);
  return Number.isInteger(low) && Number.isInteger(high) && low > 0 && high >= low
    ? { low, high }
    : { low: 32_768, high: 60_999 };
}

/** The ports below the ephemeral range, or above it where it leaves more room there. */
function portsOutsideEphemeral(): { first: number; count: number } {
  const { low, high } = ephemeralRange();
  const below = { first: LOWEST_PORT, count: low - LOWEST_PORT };
  const above = { first: high + 1, count: 65_535 - high };
  return below.count >= above.count ? below : above;
}

const ports = portsOutsideEphemeral();
const sliceSize = Math.floor(ports.count / SLICES);
const slice = (Number(process.env.VITEST_POOL_ID ?? 0) || 0) % SLICES;
const sliceStart = ports.first + slice * sliceSize;
/**
 * Where this module instance goes on from: a random place, as vitest loads the module afresh for each
 * test file of a worker, and the previous file's servers may still be stopping on the first ports.
 */
let cursor = Math.floor(Math.random() * Math.max(sliceSize, 1));

/** Whether a server can listen on the port now (nothing holds it). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  if (sliceSize < 16) {
    const { low, high } = ephemeralRange();
    throw new Error(`the kernel's ephemeral ports (${low}-${high}) leave too few ports outside them for the tests`);
  }
  for (let tries = 0; tries < sliceSize; tries += 1) {
    // Taken before the check, so that concurrent calls of one worker never get the same port.
    const port = sliceStart + (cursor++ % sliceSize);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${sliceStart}-${sliceStart + sliceSize - 1} (worker slice ${slice})`);
}
