/**
 * The RAS broker simulator for the connector's tests: the simulator itself lives with the demo, which
 * runs it too (demo/src/broker/ras-broker-simulator.ts); here is the test PKI it serves, with a
 * second, unrelated CA for the `tls` case.
 *
 * The certificates come from openssl, as an admin would make a broker's; the demo, which must run
 * where openssl is missing, makes its own with node:crypto (demo/src/broker/self-signed.ts).
 */
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export {
  RAS_CONTENT_TYPE,
  RasBrokerSimulator,
  dayFirst,
  sampleLicense,
  sampleSession,
  type SeenRequest,
  type ServerCertificate,
  type SimulatorOptions,
} from '../../demo/src/broker/ras-broker-simulator.js';
import { RasBrokerSimulator } from '../../demo/src/broker/ras-broker-simulator.js';

/** A CA and a server certificate it signed for localhost and 127.0.0.1, plus an unrelated CA. */
export interface TestPki {
  readonly dir: string;
  /** PEM of the CA that signed the server certificate. */
  readonly ca: string;
  readonly caFile: string;
  /** PEM of a CA that signed nothing the simulator serves. */
  readonly otherCa: string;
  readonly otherCaFile: string;
  readonly key: string;
  readonly cert: string;
  remove(): void;
}

/** Makes a {@link TestPki} in a new temporary directory with openssl (EC P-256 keys: quick to make). */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'rasmon-ras-pki-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const name of ['ca', 'other-ca']) {
    openssl(
      'req',
      '-x509',
      ...ecKey,
      '-days',
      '2',
      '-subj',
      `/CN=rasmon test ${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
    );
  }
  openssl('req', ...ecKey, '-subj', '/CN=localhost', '-keyout', 'broker.key', '-out', 'broker.csr');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'broker.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'san.ext',
    '-out',
    'broker.pem',
  );
  return pkiFrom(dir);
}

function pkiFrom(dir: string): TestPki {
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return {
    dir,
    ca: read('ca.pem'),
    caFile: join(dir, 'ca.pem'),
    otherCa: read('other-ca.pem'),
    otherCaFile: join(dir, 'other-ca.pem'),
    key: read('broker.key'),
    cert: read('broker.pem'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** What {@link useRasBroker} hands a test file: read its fields in a hook or a test. */
export interface RasBrokerFixture {
  /** The file's test PKI (made once for the file). */
  readonly pki: TestPki;
  /** A file holding the broker's password, as a farm's `ras.passwordFile` names it. */
  readonly passwordFile: string;
  /** The running simulator of the current test (a new one for each test). */
  readonly broker: RasBrokerSimulator;
  /** Stops the current simulator if it runs and starts another (on `port`, to come back where it was). */
  restart(port?: number): Promise<RasBrokerSimulator>;
}

/**
 * A test file's RAS broker: one test PKI and password file for the file, and a new simulator for
 * each test, stopped after it. Call at the top of the file, like `useRedis()`.
 */
export function useRasBroker(credentials: { username: string; password: string }): RasBrokerFixture {
  let pki: TestPki | undefined;
  let broker: RasBrokerSimulator | undefined;
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`useRasBroker(): ${what} is made in a hook; read it in a hook or a test`);
    return value;
  };
  const start = (port?: number) =>
    RasBrokerSimulator.start({ pki: ready(pki, 'the PKI'), ...credentials, ...(port === undefined ? {} : { port }) });
  beforeAll(() => {
    pki = makeTestPki();
    writeFileSync(join(pki.dir, 'ras-password'), `${credentials.password}\n`);
  });
  afterAll(() => pki?.remove());
  beforeEach(async () => {
    broker = await start();
  });
  afterEach(async () => {
    await broker?.stop().catch(() => undefined);
  });
  return {
    get pki() {
      return ready(pki, 'the PKI');
    },
    get passwordFile() {
      return join(ready(pki, 'the PKI').dir, 'ras-password');
    },
    get broker() {
      return ready(broker, 'the simulator');
    },
    async restart(port?: number) {
      await broker?.stop().catch(() => undefined);
      broker = await start(port);
      return broker;
    },
  };
}
