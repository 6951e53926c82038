/**
 * dist/rasmon-agent.msi for the tests that install it under wine (`wine msiexec`).
 *
 * - `MSI_TOOLS_MISSING` says why those tests cannot run here (wine, wixl, msitools or mingw absent).
 * - `ensureAgentMsi()` builds the package when it is missing or was built from other sources or
 *   another exe (the exe itself is built first when stale); `{ version, out }` builds a second
 *   package of the same exe under a newer product version, to upgrade to.
 * - `Msiexec` runs msiexec in a prefix set up for services, each run with its own verbose log.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from '../../agent/build/exe-inputs.js';
import { currentMsiStamp, MSI_PATH, type MsiStamp } from '../../agent/build/msi-layout.js';
import { withBuildLock } from './build-lock.js';
import { ensureAgentExe, WINE_MISSING, type WinePrefix } from './wine.js';

export { MSI_PATH };

const BUILD_TOOLS: Record<string, string> = {
  wixl: 'wixl',
  msiinfo: 'msitools',
  msibuild: 'msitools',
  'x86_64-w64-mingw32-gcc': 'gcc-mingw-w64-x86-64',
};

function missingTools(): string | undefined {
  const missing = Object.keys(BUILD_TOOLS).filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0,
  );
  if (missing.length === 0) return undefined;
  return `${missing.join(', ')} not on the PATH (Debian: apt-get install ${[...new Set(missing.map((tool) => BUILD_TOOLS[tool]))].join(' ')}): the rasmon-agent.msi tests are skipped`;
}

/** Why the MSI tests are skipped here, or undefined when they run. */
export const MSI_TOOLS_MISSING: string | undefined = WINE_MISSING ?? missingTools();

const LOCK = join(REPO_ROOT, 'dist', '.rasmon-agent-msi.lock');

/**
 * Runs `use` while no other test file builds an MSI: build:agent-msi (and sign:agent, which runs
 * it) writes dist/build-msi.mjs and a work folder.
 */
export function withMsiBuildLock<T>(use: () => T): Promise<T> {
  return withBuildLock(LOCK, 'rasmon-agent.msi', use);
}

/** The package (and its stamp), built from the current sources and exe. */
export async function ensureAgentMsi(options: { version?: string; out?: string } = {}): Promise<MsiStamp> {
  const out = options.out ?? MSI_PATH;
  const fresh = () => {
    const stamp = currentMsiStamp(out);
    return stamp && (options.version === undefined || stamp.version === options.version) ? stamp : undefined;
  };
  // The exe first, under its own lock: the other wine tests build it too.
  await ensureAgentExe();
  return withMsiBuildLock(() => {
    if (!fresh()) {
      const args = ['run', '--silent', 'build:agent-msi', '--', '--out', out];
      if (options.version) args.push('--version', options.version);
      execFileSync('npm', args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'], timeout: 15 * 60_000 });
    }
    const built = fresh();
    if (!built) throw new Error(`npm run build:agent-msi did not produce a current ${out}`);
    return built;
  });
}

/** A Linux path as Windows programs under wine see it (drive Z: is `/`). */
export const windowsPath = (path: string) => `Z:${path.replaceAll('/', '\\')}`;

export interface MsiRun {
  code: number | null;
  /** The verbose log (msiexec /l*v). */
  log: string;
}

/** How long msiexec may take to open its log: it does so first thing (within 1-2 s on a quiet machine). */
const LOG_LIMIT_MS = 30_000;

/** msiexec in one prefix; every run writes its own log under C:\msi-logs. */
export class Msiexec {
  private runs = 0;

  private constructor(readonly prefix: WinePrefix) {}

  /** msiexec in `prefix`, set up to run services (`WinePrefix.runServices`). */
  static async forServices(prefix: WinePrefix): Promise<Msiexec> {
    await prefix.runServices();
    mkdirSync(join(prefix.dir, 'drive_c', 'msi-logs'), { recursive: true });
    return new Msiexec(prefix);
  }

  /** `msiexec <action> <package or product code> /qn /l*v LOG <properties>`. */
  async run(action: '/i' | '/x', target: string, properties: Record<string, string> = {}): Promise<MsiRun> {
    this.runs += 1;
    const name = `run-${this.runs}.log`;
    const args = ['msiexec', action, target, '/qn', '/l*v', `C:\\msi-logs\\${name}`];
    for (const [key, value] of Object.entries(properties)) args.push(`${key}=${value}`);
    const file = join(this.prefix.dir, 'drive_c', 'msi-logs', name);
    // wine itself can fail to start in the moments after runServices() restarted the prefix's
    // wineserver (seen once: exit 1 within 150 ms, before msiexec wrote a line), and a run once gave
    // no answer within 60 s, where a run takes 3-7 s (the next test's install in the same prefix went
    // through at once). msiexec opens its log first thing, so a run without a log never reached the
    // package: it is started again, at most twice. A run that reached msiexec is never repeated.
    let result = await this.attempt(args, file);
    for (let retry = 0; retry < 2 && result.code !== 0 && !existsSync(file); retry += 1) {
      await sleep(1000);
      result = await this.attempt(args, file);
    }
    return { code: result.code, log: existsSync(file) ? readFileSync(file, 'latin1') : '' };
  }

  /**
   * One msiexec run: stopped when it has not opened its log within {@link LOG_LIMIT_MS} (wine did
   * not start it), else given up to 5 minutes.
   */
  private async attempt(args: string[], file: string): Promise<{ code: number | null }> {
    const proc = await this.prefix.start('wine', args);
    let ended = false;
    void proc.exited.then(() => (ended = true));
    const deadline = Date.now() + LOG_LIMIT_MS;
    while (!ended && !existsSync(file) && Date.now() < deadline) await sleep(100);
    if (!ended && !existsSync(file)) {
      await proc.kill();
      return { code: null };
    }
    const timer = setTimeout(() => void proc.kill(), 300_000);
    const { code } = await proc.exited;
    clearTimeout(timer);
    return { code };
  }

  /** The lines the setup step printed into the log (RunAgentStep prefixes them). */
  static stepLines(log: string): string[] {
    return log
      .split(/\r?\n/)
      .filter((line) => line.startsWith('rasmon-agent: '))
      .map((line) => line.slice('rasmon-agent: '.length));
  }
}
