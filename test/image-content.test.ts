/**
 * What the container image holds, without a Docker engine: the Dockerfile's final stage is laid out
 * in a temporary folder instruction by instruction (its COPYs, with .dockerignore applied; its
 * `npm ci --omit=dev`, so production dependencies only; the build stage's `dist` folders as `tsc -b`
 * made them here), and the image's command is started from there, as docker-compose.yml configures
 * it: the status page, its script and /metrics answer.
 */
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ROOT, copies, dockerIgnores, readDockerfile, type Stage } from './support/dockerfile.js';
import { mounted } from './support/compose.js';
import { untilServing } from './support/process-start.js';
import { freePort } from './support/free-port.js';
import { useRedis } from './support/use-redis.js';

const run = promisify(execFile);

/**
 * The RUN lines the final stage may have, and what is run for each here. `npm cache clean` is not
 * repeated: here it would empty the machine's npm cache, and it removes nothing the image runs.
 */
const KNOWN_RUNS: Record<string, string[][]> = {
  'npm ci --omit=dev --ignore-scripts && npm cache clean --force': [
    ['npm', 'ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'],
  ],
};

/**
 * The environment of a container's process, as far as it matters here: this machine's, without the
 * checkout's `node_modules/.bin` folders that npm and vitest put on the PATH (a command must be found
 * in the image's own).
 */
function baseEnv(): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '')
    .split(':')
    .filter((dir) => !dir.endsWith('/node_modules/.bin'))
    .join(':');
  // Nor the settings `npm test` hands its children (npm_config_*, npm_lifecycle_*): the image's npm ci
  // runs with none of them.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
  return { ...env, PATH: path };
}

interface Image {
  root: string;
  env: Record<string, string>;
  cmd: string[];
}

/** Lays out the final stage of the Dockerfile under `root` (its WORKDIR), as `docker build` would. */
async function layOut(stage: Stage, root: string): Promise<Image> {
  const ignored = dockerIgnores();
  const env: Record<string, string> = {};
  let workdir = '/';
  let cmd: string[] = [];
  const stageCopies = copies(stage);
  const inImage = (path: string) => join(root, relative(workdir, posix.resolve(workdir, path)));
  for (const instruction of stage.instructions) {
    switch (instruction.keyword) {
      case 'FROM':
      case 'USER':
      case 'EXPOSE':
        break;
      case 'WORKDIR':
        workdir = instruction.args;
        break;
      case 'ENV': {
        const [name, ...value] = instruction.args.split('=');
        // Paths under the WORKDIR move into the folder; `$NAME` is the variable's value here.
        env[name!] = value
          .join('=')
          .replaceAll(workdir, root)
          .replace(/\$(\w+)/g, (_, variable: string) => env[variable] ?? baseEnv()[variable] ?? '');
        break;
      }
      case 'COPY': {
        const copy = stageCopies.find((c) => c.line === instruction.line)!;
        for (const source of copy.sources) {
          // A stage's output is the package's `dist` that `tsc -b` builds here (test/dockerfile.test.ts).
          const from = copy.from === undefined ? join(ROOT, source) : join(ROOT, relative('/app', source));
          const into = copy.destination.endsWith('/')
            ? join(inImage(copy.destination), statSync(from).isDirectory() ? '' : posix.basename(source))
            : inImage(copy.destination);
          mkdirSync(dirname(into), { recursive: true });
          cpSync(from, into, {
            recursive: true,
            filter: (path) => copy.from !== undefined || path === from || !ignored(relative(ROOT, path)),
          });
        }
        break;
      }
      case 'RUN': {
        const commands = KNOWN_RUNS[instruction.args];
        if (!commands)
          throw new Error(`Dockerfile line ${instruction.line}: teach this test what "RUN ${instruction.args}" does`);
        // The build runs on the machine's clock, not on a test's shifted one (npm's TLS checks dates).
        const { LD_PRELOAD: _shim, ...buildEnv } = { ...baseEnv(), ...env };
        for (const [program, ...args] of commands) await run(program!, args, { cwd: inImage('.'), env: buildEnv });
        break;
      }
      case 'CMD':
        cmd = JSON.parse(instruction.args) as string[];
        break;
      default:
        throw new Error(`Dockerfile line ${instruction.line}: teach this test what ${instruction.keyword} does`);
    }
  }
  return { root: inImage('.'), env, cmd };
}

describe('the container image', () => {
  const redis = useRedis();
  let image: Image;
  let folder: string;

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'rasmon-image-'));
    image = await layOut(readDockerfile().at(-1)!, join(folder, 'app'));
  }, 300_000);
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it('holds production dependencies only', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    const modules = join(image.root, 'node_modules');
    expect(existsSync(join(modules, 'prom-client'))).toBe(true);
    const present = Object.keys(pkg.devDependencies).filter((name) => existsSync(join(modules, name)));
    // A development dependency that is also a production one of a package is rightly there.
    const production = new Set(
      ['protocol', 'collector', 'agent', 'demo'].flatMap((dir) =>
        Object.keys(
          (JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as { dependencies?: object })
            .dependencies ?? {},
        ),
      ),
    );
    expect(present.filter((name) => !production.has(name))).toEqual([]);
    expect(existsSync(join(modules, 'typescript'))).toBe(false);
  });

  it("runs the image's command: the status page, its script and /metrics answer", async () => {
    expect(image.cmd).toEqual(['rasmon-collector', '--config', '/etc/rasmon/collector.yaml']);
    // The command is found in the image's folder, first on its PATH, not in this checkout.
    expect(image.env.PATH!.split(':')[0]).toBe(join(image.root, 'node_modules/.bin'));
    expect(existsSync(join(image.root, 'node_modules/.bin/rasmon-collector'))).toBe(true);
    const port = await freePort();
    const child = spawn(image.cmd[0]!, ['--config', mounted('collector', '/etc/rasmon') + '/collector.yaml'], {
      cwd: image.root,
      stdio: ['ignore', 'pipe', 'pipe'],
      // The lab's Redis is this suite's; the address is the container's, moved to a free port.
      env: { ...baseEnv(), ...image.env, REDIS_URL: redis.url, RASMON_LISTEN: `127.0.0.1:${port}` },
    });
    const output: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    onTestFinished(async () => {
      child.kill('SIGTERM');
      await exited;
    });
    const url = `http://127.0.0.1:${port}`;
    await untilServing(child, `${url}/readyz`, { name: 'the collector', output: () => output.join('') });

    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/static/app.js');
    const script = await fetch(`${url}/static/app.js`);
    expect(script.status).toBe(200);
    expect(await script.text()).toBe(readFileSync(join(ROOT, 'collector/static/app.js'), 'utf8'));
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toMatch(/^ras_license_info\{farm="farm-a",license="primary"\} 1$/m);
    expect(text).toMatch(/^rasmon_collector_redis_up 1$/m);
  });

  it("runs the agent's command", async () => {
    const { stdout } = await run('rasmon-agent', ['--version'], {
      cwd: image.root,
      env: { ...baseEnv(), ...image.env },
    });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
