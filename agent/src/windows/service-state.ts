/**
 * What the service tells the Service Control Manager, as a state machine: start pending, running,
 * stop pending (with a checkpoint that moves and a wait hint), stopped. Pure, so every transition
 * is tested on Linux; service-run.ts passes each status to SetServiceStatus.
 */
import type { ServiceStatus } from './advapi32.js';

export const SERVICE_STOPPED = 1;
export const SERVICE_START_PENDING = 2;
export const SERVICE_STOP_PENDING = 3;
export const SERVICE_RUNNING = 4;

export const SERVICE_CONTROL_STOP = 1;
export const SERVICE_CONTROL_INTERROGATE = 4;
export const SERVICE_CONTROL_SHUTDOWN = 5;
export const SERVICE_ACCEPT_STOP = 0x1;
export const SERVICE_ACCEPT_SHUTDOWN = 0x4;

const NO_ERROR = 0;
const ERROR_CALL_NOT_IMPLEMENTED = 120;
const ERROR_SERVICE_SPECIFIC_ERROR = 1066;
const SERVICE_WIN32_OWN_PROCESS = 0x10;

export const STATE_NAMES: Record<number, string> = {
  1: 'stopped',
  2: 'start pending',
  3: 'stop pending',
  4: 'running',
  5: 'continue pending',
  6: 'pause pending',
  7: 'paused',
};

/** How long the agent may take to start (first poll, spool open) and to stop (flush, close). */
export const START_WAIT_HINT_MS = 30_000;
export const STOP_WAIT_HINT_MS = 15_000;

export type ControlOutcome =
  /** Begin stopping: report the stop-pending status now, then run the agent's stop. */
  { reply: number; stop: true; status: ServiceStatus } | { reply: number; stop: false; status?: ServiceStatus };

export class ServiceStateMachine {
  private state = SERVICE_STOPPED;
  private checkPoint = 0;
  /** A stop asked for while starting: honoured as soon as the agent runs. */
  private stopWanted = false;

  get current(): number {
    return this.state;
  }

  /** ServiceMain was called: START_PENDING, nothing accepted yet. */
  starting(): ServiceStatus {
    this.state = SERVICE_START_PENDING;
    this.checkPoint = 1;
    return this.status(START_WAIT_HINT_MS);
  }

  /** The agent started. Returns the RUNNING status, or STOP_PENDING when a stop came meanwhile. */
  running(): { status: ServiceStatus; stop: boolean } {
    if (this.stopWanted) return { status: this.enterStopPending(), stop: true };
    this.state = SERVICE_RUNNING;
    this.checkPoint = 0;
    return { status: this.status(0), stop: false };
  }

  /** The stop is still under way: the checkpoint moves, so the SCM knows it is not hung. */
  progress(): ServiceStatus | undefined {
    if (this.state !== SERVICE_START_PENDING && this.state !== SERVICE_STOP_PENDING) return undefined;
    this.checkPoint += 1;
    return this.status(this.state === SERVICE_START_PENDING ? START_WAIT_HINT_MS : STOP_WAIT_HINT_MS);
  }

  /** A control from the SCM (HandlerEx): what to answer and what to do. */
  control(code: number): ControlOutcome {
    switch (code) {
      case SERVICE_CONTROL_STOP:
      case SERVICE_CONTROL_SHUTDOWN:
        if (this.state === SERVICE_RUNNING) return { reply: NO_ERROR, stop: true, status: this.enterStopPending() };
        if (this.state === SERVICE_START_PENDING) {
          this.stopWanted = true;
          return { reply: NO_ERROR, stop: false };
        }
        // Already stopping or stopped: nothing more to do.
        return { reply: NO_ERROR, stop: false };
      case SERVICE_CONTROL_INTERROGATE:
        return { reply: NO_ERROR, stop: false, status: this.status(this.waitHint()) };
      default:
        return { reply: ERROR_CALL_NOT_IMPLEMENTED, stop: false };
    }
  }

  /** The final status; a non-zero `serviceExitCode` makes the SCM run the recovery actions. */
  stopped(serviceExitCode = 0): ServiceStatus {
    this.state = SERVICE_STOPPED;
    this.checkPoint = 0;
    const status = this.status(0);
    if (serviceExitCode !== 0) {
      status.dwWin32ExitCode = ERROR_SERVICE_SPECIFIC_ERROR;
      status.dwServiceSpecificExitCode = serviceExitCode;
    }
    return status;
  }

  private enterStopPending(): ServiceStatus {
    this.state = SERVICE_STOP_PENDING;
    this.checkPoint = 1;
    return this.status(STOP_WAIT_HINT_MS);
  }

  private waitHint(): number {
    if (this.state === SERVICE_START_PENDING) return START_WAIT_HINT_MS;
    if (this.state === SERVICE_STOP_PENDING) return STOP_WAIT_HINT_MS;
    return 0;
  }

  private status(waitHint: number): ServiceStatus {
    return {
      dwServiceType: SERVICE_WIN32_OWN_PROCESS,
      dwCurrentState: this.state,
      // Controls are accepted only while running (a pending service must not be sent any).
      dwControlsAccepted: this.state === SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0,
      dwWin32ExitCode: NO_ERROR,
      dwServiceSpecificExitCode: 0,
      dwCheckPoint: this.checkPoint,
      dwWaitHint: waitHint,
    };
  }
}
