/** `npm run demo` refusing to start, one clear line each: no Redis needed, none is reached. */
import { describe, expect, it } from 'vitest';
import { runDemo } from './support/demo-process.js';

describe('npm run demo refuses', () => {
  it('says how to get Redis when the one it was given does not answer', async () => {
    const run = await runDemo(['--seconds', '1', '--port', '0'], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(run.code).toBe(1);
    expect(run.err).toBe('REDIS_URL=redis://127.0.0.1:1 does not answer PING.\n');
  });

  it('refuses a bad flag with a clear line', async () => {
    const run = await runDemo(['--port', 'x'], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(run.code).toBe(2);
    expect(run.err).toBe('demo: --port must be a port number, not x\n');
  });
});
