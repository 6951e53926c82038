import { execFile } from 'node:child_process';

export interface CommandOutput {
  stdout: string;
  stderr: string;
  /** Exit code; 0 on success. */
  code: number;
}

/**
 * Runs a program and collects its output, whatever its exit code (quser exits 1 for "no users").
 * Rejects only when the program cannot be started or runs past the timeout.
 */
export function runCommand(
  file: string,
  args: readonly string[],
  options: { shell?: boolean; timeoutMs?: number } = {},
): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        shell: options.shell ?? false,
        timeout: options.timeoutMs ?? 30_000,
        maxBuffer: 64 * 1024 * 1024,
        windowsHide: true,
      },
      (err, stdout, stderr) => {
        const failure = err as (NodeJS.ErrnoException & { killed?: boolean; code?: number | string }) | null;
        if (failure && (typeof failure.code !== 'number' || failure.killed)) {
          reject(new Error(`${file} could not run: ${failure.killed ? 'timed out' : failure.message}`, { cause: err }));
          return;
        }
        resolve({ stdout: String(stdout), stderr: String(stderr), code: failure ? Number(failure.code) : 0 });
      },
    );
  });
}
