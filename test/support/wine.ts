/**
 * dist/rasmon-agent.exe under wine64, for the tests that are about the Windows exe itself.
 *
 * - `ensureAgentExe()` builds the exe once (`npm run build:agent-exe`) when it is missing or was
 *   built from other sources; test files running at once wait for one build.
 * - `WinePrefix` is one wine prefix (boot once per test file: a fresh one takes seconds), made to
 *   report Windows 10 (node.exe refuses older ones). Output goes to files: a pipe as stdout fails
 *   with EBADF under wine.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentExeStamp, EXE_PATH, REPO_ROOT } from '../../agent/build/exe-inputs.js';
import { withBuildLock } from './build-lock.js';

export { EXE_PATH };

/** The timeout of an afterAll that disposes of a prefix ({@link WinePrefix.dispose}) and stops servers. */
export const DISPOSE_TIMEOUT_MS = 180_000;

/** Why the wine tests are skipped here, or undefined when they run. */
export const WINE_MISSING: string | undefined =
  spawnSync('sh', ['-c', 'command -v wine'], { encoding: 'utf8' }).status === 0
    ? undefined
    : 'wine is not on the PATH (Debian: apt-get install wine64): the rasmon-agent.exe tests are skipped';

const LOCK = join(REPO_ROOT, 'dist', '.rasmon-agent-exe.lock');

/** The exe, built from the current sources. */
export async function ensureAgentExe(): Promise<string> {
  if (currentExeStamp()) return EXE_PATH;
  await withBuildLock(LOCK, 'rasmon-agent.exe', () => {
    if (currentExeStamp()) return;
    execFileSync('npm', ['run', '--silent', 'build:agent-exe'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 10 * 60_000,
    });
  });
  if (!currentExeStamp()) throw new Error('npm run build:agent-exe did not produce a current dist/rasmon-agent.exe');
  return EXE_PATH;
}

export interface ExeResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running program under wine, its output in files. */
export class WineProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly child: ChildProcess,
    private readonly stdoutFile: string,
    private readonly stderrFile: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get stdout(): string {
    return existsSync(this.stdoutFile) ? readFileSync(this.stdoutFile, 'utf8') : '';
  }

  get stderr(): string {
    return existsSync(this.stderrFile) ? readFileSync(this.stderrFile, 'utf8') : '';
  }

  /** Ends the program at once: the Windows process is this very process under wine. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

export class WinePrefix {
  private outputs = 0;

  private constructor(readonly dir: string) {}

  /** A fresh prefix, booted and set to Windows 10. */
  static async create(): Promise<WinePrefix> {
    const prefix = new WinePrefix(mkdtempSync(join(tmpdir(), 'rasmon-wine-')));
    // Left to itself, a prefix's wineserver exits 3 s after its last program, and a program started
    // just as it exits fails: wine exits 1 before the program runs, having printed nothing. Started
    // before the first program to stay 10 minutes after the last one, it is not exiting when a test
    // starts the next one; dispose() stops it, and one left by a test run that was killed ends by itself.
    const server = prefix.wineserver('-p600');
    if (server.error || server.status !== 0)
      throw new Error(`wineserver -p600 failed: ${server.error?.message ?? `exit code ${server.status}`}`);
    await prefix.run('wineboot', ['-i'], 180_000);
    const version = await prefix.run(
      'wine',
      ['reg', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/d', 'win10', '/f'],
      60_000,
    );
    if (version.code !== 0) throw new Error(`wine reg add failed: ${version.stderr}`);
    return prefix;
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, WINEPREFIX: this.dir, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' };
  }

  /** Starts `wine EXE args…` (or another wine tool) with stdout and stderr going to files. */
  async start(program: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<WineProcess> {
    this.outputs += 1;
    const stdoutFile = join(this.dir, `out-${this.outputs}.txt`);
    const stderrFile = join(this.dir, `err-${this.outputs}.txt`);
    const [out, err] = await Promise.all([open(stdoutFile, 'w'), open(stderrFile, 'w')]);
    try {
      const child = spawn(program, [...args], { env: { ...this.env, ...env }, stdio: ['ignore', out.fd, err.fd] });
      return new WineProcess(child, stdoutFile, stderrFile);
    } finally {
      await Promise.all([out.close(), err.close()]);
    }
  }

  /** Runs the exe to its end. */
  exe(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ExeResult> {
    return this.run('wine', [EXE_PATH, ...args], options.timeoutMs ?? 60_000, options.env);
  }

  /** Starts the exe and leaves it running. */
  startExe(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<WineProcess> {
    return this.start('wine', [EXE_PATH, ...args], env);
  }

  async run(
    program: string,
    args: readonly string[],
    timeoutMs: number,
    env: NodeJS.ProcessEnv = {},
  ): Promise<ExeResult> {
    const proc = await this.start(program, args, env);
    const timer = setTimeout(() => void proc.kill(), timeoutMs);
    const { code } = await proc.exited;
    clearTimeout(timer);
    return { code, stdout: proc.stdout, stderr: proc.stderr };
  }

  /**
   * Makes the prefix run services as Windows does: a service gets 60 s to answer its start (wine
   * waits 10 s, Windows 30 s: short on a busy test machine), and a persistent wineserver keeps
   * services running after the last program exits (wine otherwise ends them). Wine reads the timeout
   * when its services.exe starts: hence the restart.
   */
  async runServices(): Promise<void> {
    const timeout = await this.run(
      'wine',
      [
        'reg',
        'add',
        'HKLM\\System\\CurrentControlSet\\Control',
        '/v',
        'ServicesPipeTimeout',
        '/t',
        'REG_SZ',
        '/d',
        '60000',
        '/f',
      ],
      60_000,
    );
    if (timeout.code !== 0)
      throw new Error(`wine reg add ServicesPipeTimeout exited ${timeout.code}: ${timeout.stderr}`);
    this.wineserver('-k');
    this.wineserver('-w');
    this.wineserver('-p');
  }

  /**
   * `wineserver FLAG` for this prefix. No pipes: a server it leaves running would hold them open,
   * and spawnSync would wait for it to its timeout.
   */
  private wineserver(flag: string): SpawnSyncReturns<Buffer> {
    return spawnSync('wineserver', [flag], { env: this.env, stdio: 'ignore', timeout: 30_000 });
  }

  /**
   * Stops every program of the prefix (wineserver -k) and removes it: up to a minute on a loaded
   * machine, longer than vitest's hook timeout leaves the rest of an afterAll (DISPOSE_TIMEOUT_MS).
   */
  async dispose(): Promise<void> {
    this.wineserver('-k');
    this.wineserver('-w');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
