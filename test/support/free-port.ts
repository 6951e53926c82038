/**
 * `freePort()`: a loopback port for a server a test (or the bench) starts, which no other test worker
 * and no port the kernel hands out can take before the server binds it.
 *
 * A port the kernel picked for a listen on port 0 and then released is free only for a moment: the
 * other test worker's next listen on port 0 (an in-process collector) or its next `freePort()` may be
 * given it too. Whichever server binds second fails, and a test that polls the port for readiness
 * then talks to the other worker's server (its collector, with the same farm names and tokens). So the
 * ports come from below the kernel's ephemeral range (`ip_local_port_range`), which it never hands
 * out on its own, and each vitest worker (`VITEST_POOL_ID`) has its own slice of them; a port of the
 * slice that something still holds (a server a previous file left) is skipped.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The first port handed out; the ones below are left to the machine's own services. */
const FIRST_PORT = 20_000;
/** Slices of the range: one per worker, vitest's worker ids being 1 to maxWorkers (0 outside vitest). */
const SLICES = 8;

/** The first port of the kernel's ephemeral range (Linux), 32768 when it cannot be read. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const sliceSize = Math.floor((ephemeralLow() - FIRST_PORT) / SLICES);
const slice = (Number(process.env.VITEST_POOL_ID ?? 0) || 0) % SLICES;
const sliceStart = FIRST_PORT + slice * sliceSize;
/**
 * Where this module instance goes on from: a random place, as vitest loads the module afresh for each
 * test file of a worker, and the previous file's servers may still be stopping on the first ports.
 */
let cursor = sliceSize > 0 ? Math.floor(Math.random() * sliceSize) : 0;

/** Whether a server can listen on the port now (nothing holds it). */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port the kernel picked: where the machine's ephemeral range leaves no room below it. */
function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export async function freePort(): Promise<number> {
  if (sliceSize < 16) return kernelPort();
  for (let tries = 0; tries < sliceSize; tries += 1) {
    // Taken before the check, so that concurrent calls of one worker never get the same port.
    const port = sliceStart + (cursor++ % sliceSize);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${sliceStart}-${sliceStart + sliceSize - 1} (worker slice ${slice})`);
}
