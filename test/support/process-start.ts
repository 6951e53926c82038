/** Waiting for a process a test started (the collector, the agent, Prometheus, Alertmanager) to serve HTTP. */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a start may take before the test fails: well past a loaded machine's, within the test timeout. */
const START_TIMEOUT_MS = 30_000;

export interface ServingOptions {
  /** The process as the error names it. */
  name: string;
  /** What the process printed so far, for the error. */
  output: () => string;
  /** Stops the process when it did not start in time; SIGKILL unless given. */
  kill?: () => Promise<unknown> | void;
  timeoutMs?: number;
}

/**
 * Resolves once `url` answers 200; throws (after killing the child) when the child exits first or
 * the time is up. A deadline, not a count of tries: on a loaded machine a start takes longer, and a
 * fetch too.
 */
export async function untilServing(child: ChildProcess, url: string, options: ServingOptions): Promise<void> {
  const { name, output, kill = () => void child.kill('SIGKILL'), timeoutMs = START_TIMEOUT_MS } = options;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode}: ${output()}`);
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) })).status === 200)
        return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  await kill();
  throw new Error(`${name} did not answer ${new URL(url).pathname} within ${timeoutMs} ms: ${output()}`);
}
