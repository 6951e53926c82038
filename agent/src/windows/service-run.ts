/**
 * `service run --config FILE`: what the Service Control Manager starts. It speaks the SCM protocol
 * itself. StartServiceCtrlDispatcherW blocks its thread until the service stops, so it runs as a
 * koffi async call on a worker thread; the SCM then calls ServiceMain and the control handler on
 * threads of its own, and koffi queues those callbacks to the main thread, where the agent runs.
 * Start, stop and the conditions that need an administrator go to the Event Log.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { inspect } from 'node:util';
import type { Logger } from '@rasmon/protocol/kit';
import { AdminAlerts } from './admin-alerts.js';
import { advapi32, type Handle, type ServiceStatus } from './advapi32.js';
import { EVENTS, type EventName } from './event-ids.js';
import { EventLog } from './event-log.js';
import { lockDirectory } from './file-lock.js';
import { koffiDirectory } from './koffi-loader.js';
import { lockRuntimeFolder } from './runtime-folder.js';
import { SERVICE_NAME } from './service-manager.js';
import { SERVICE_CONTROL_SHUTDOWN, ServiceStateMachine, STOP_WAIT_HINT_MS } from './service-state.js';

/** The agent's stop must end this long before the wait hint, so STOPPED is reported within it. */
const STOP_MARGIN_MS = 3000;
/**
 * At system shutdown Windows waits only WaitToKillServiceTimeout (5 s by default) whatever the hint:
 * the agent's stop gets less, so STOPPED is reported before the process is killed. The spool is on
 * disk before every send, so a cut-short stop loses nothing.
 */
const SHUTDOWN_STOP_MS = 4000;

/** What the service reads of the agent's configuration: the spool, and what its log and events name. */
export interface ServiceConfig {
  farm?: string | undefined;
  host: string;
  source: string;
  collector?: string | undefined;
  spool: { dir: string };
}

/** The running agent, as far as the service is concerned: what it stops. */
export interface ServiceAgent {
  stop(): Promise<void>;
}

/**
 * Builds and starts the agent with the service's log, reporting to `alerts` what needs an
 * administrator; an agent that fails to start is stopped before the error is thrown.
 */
export type StartServiceAgent = (log: Logger, alerts: AdminAlerts) => Promise<ServiceAgent>;

/** Where the service writes its log: `logs\rasmon-agent.log` beside the spool directory. */
export function serviceLogFile(config: Pick<ServiceConfig, 'spool'>): string {
  return join(dirname(config.spool.dir), 'logs', 'rasmon-agent.log');
}

/** Opens the service's log on `file` (rotating by size, in the configured format); given by the caller. */
export type OpenServiceLog = (file: string) => { log: Logger; close: () => void };

function serviceLogger(config: ServiceConfig, openLog: OpenServiceLog): { log: Logger; stopRotating: () => void } {
  const file = serviceLogFile(config);
  mkdirSync(dirname(file), { recursive: true });
  lockDirectory(dirname(file));
  const { log, close } = openLog(file);
  return { log, stopRotating: close };
}

/**
 * Runs the service until the SCM stops it; resolves with the process exit code. Fails at once
 * (ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) when not started by the SCM.
 */
export function runService(
  config: ServiceConfig,
  startAgent: StartServiceAgent,
  openLog: OpenServiceLog,
): Promise<number> {
  const api = advapi32();
  const k = api.k;
  const machine = new ServiceStateMachine();
  let statusHandle: Handle = null;
  let exitCode = 0;
  let events: EventLog | undefined;
  let log: Logger | undefined;

  const setStatus = (status: ServiceStatus | undefined) => {
    if (status && statusHandle) api.SetServiceStatus(statusHandle, status);
  };
  const event = (name: EventName, detail?: string) => {
    log?.info({ eventId: EVENTS[name].id }, `event log: ${EVENTS[name].summary}`);
    events?.write(name, detail);
  };

  let requestStop: (budgetMs: number) => void = () => undefined;
  const stopRequested = new Promise<number>((resolve) => (requestStop = resolve));

  const handler = k.register((control: number) => {
    const outcome = machine.control(control);
    setStatus(outcome.status);
    if (outcome.stop)
      requestStop(control === SERVICE_CONTROL_SHUTDOWN ? SHUTDOWN_STOP_MS : STOP_WAIT_HINT_MS - STOP_MARGIN_MS);
    return outcome.reply;
  }, k.pointer(api.HandlerEx));

  const serve = async () => {
    let agent: ServiceAgent | undefined;
    let alerts: AdminAlerts | undefined;
    let stopRotating = () => undefined as void;
    try {
      try {
        events = EventLog.open();
      } catch {
        // No Event Log (or no right to it): the log file still says everything.
      }
      mkdirSync(config.spool.dir, { recursive: true });
      lockDirectory(config.spool.dir);
      ({ log, stopRotating } = serviceLogger(config, openLog));
      const runtime = koffiDirectory(config.spool.dir);
      const { removed } = lockRuntimeFolder(runtime);
      if (removed === undefined)
        log.warn(
          { dir: runtime },
          'runtime folder is not private after locking it: earlier copies of koffi left in place',
        );
      else if (removed > 0) log.info({ dir: runtime, removed }, 'removed earlier copies of koffi');
      alerts = new AdminAlerts(event);
      log.info(
        { farm: config.farm, host: config.host, source: config.source, collector: config.collector },
        'service starting',
      );
      agent = await startAgent(log, alerts);
      alerts.disconnected();
      const { status, stop } = machine.running();
      setStatus(status);
      if (stop) requestStop(STOP_WAIT_HINT_MS - STOP_MARGIN_MS);
      event(
        'serviceStarted',
        `farm ${config.farm}, host ${config.host}, source ${config.source}, collector ${config.collector}`,
      );
    } catch (err) {
      exitCode = 1;
      const reason = (err as Error).message;
      log?.error({ err }, 'service could not start');
      event('serviceFailed', `could not start: ${reason}`);
      alerts?.close();
      stopRotating();
      setStatus(machine.stopped(exitCode));
      return;
    }

    const budgetMs = await stopRequested;
    log.info('service stopping');
    alerts.close();
    const progress = setInterval(() => setStatus(machine.progress()), 2000);
    let timedOut = false;
    const deadline = new Promise<void>((resolve) =>
      setTimeout(() => {
        timedOut = true;
        resolve();
      }, budgetMs).unref(),
    );
    try {
      await Promise.race([agent.stop(), deadline]);
    } catch (err) {
      exitCode = 1;
      log.error({ err }, 'stop failed');
      event('serviceFailed', `stop failed: ${(err as Error).message}`);
    }
    clearInterval(progress);
    if (timedOut) event('stopTimedOut');
    else if (exitCode === 0) event('serviceStopped');
    log.info('service stopped');
    stopRotating();
    setStatus(machine.stopped(exitCode));
  };

  const main = k.register(() => {
    statusHandle = api.RegisterServiceCtrlHandlerExW(SERVICE_NAME, handler, null);
    if (!statusHandle) {
      exitCode = 1;
      return;
    }
    setStatus(machine.starting());
    void serve();
  }, k.pointer(api.ServiceMain));

  process.on('uncaughtException', (err) => {
    exitCode = 2;
    log?.fatal({ err }, 'uncaught exception');
    event('serviceFailed', `stopped on an unexpected error: ${err.message}`);
    setStatus(machine.stopped(exitCode));
  });

  return new Promise((resolve, reject) => {
    const table = [
      { lpServiceName: SERVICE_NAME, lpServiceProc: main },
      { lpServiceName: null, lpServiceProc: null },
    ];
    api.StartServiceCtrlDispatcherW.async(table, (err, ok) => {
      events?.close();
      k.unregister(main);
      k.unregister(handler);
      if (err) return reject(err instanceof Error ? err : new Error(inspect(err)));
      if (!ok) {
        return reject(
          new Error(
            'StartServiceCtrlDispatcherW failed: `service run` is what the Service Control Manager starts; install with `service install`, or run the agent in a console without `service run`',
          ),
        );
      }
      resolve(exitCode);
    });
  });
}
