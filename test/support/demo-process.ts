/** `npm run demo` as its own process, the way a newcomer starts it. */
import { spawn } from 'node:child_process';

const DEMO = new URL('../../demo/dist/demo.js', import.meta.url).pathname;

export function runDemo(
  args: string[],
  env: NodeJS.ProcessEnv,
  /** Called with each stdout chunk and the child, e.g. to send it Ctrl-C. */
  onOutput?: (out: string, child: ReturnType<typeof spawn>) => void,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [DEMO, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      onOutput?.(out, child);
    });
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (code) => resolve({ code, out, err }));
  });
}
