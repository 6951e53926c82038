import { describe, expect, it } from 'vitest';
import {
  SERVICE_ACCEPT_SHUTDOWN,
  SERVICE_ACCEPT_STOP,
  SERVICE_CONTROL_INTERROGATE,
  SERVICE_CONTROL_SHUTDOWN,
  SERVICE_CONTROL_STOP,
  SERVICE_RUNNING,
  SERVICE_START_PENDING,
  SERVICE_STOP_PENDING,
  SERVICE_STOPPED,
  ServiceStateMachine,
  START_WAIT_HINT_MS,
  STOP_WAIT_HINT_MS,
} from '../src/windows/service-state.js';

describe('service status reported to the SCM', () => {
  it('goes start pending, running, stop pending with a moving checkpoint, stopped', () => {
    const machine = new ServiceStateMachine();
    const starting = machine.starting();
    expect(starting).toMatchObject({
      dwCurrentState: SERVICE_START_PENDING,
      dwControlsAccepted: 0,
      dwCheckPoint: 1,
      dwWaitHint: START_WAIT_HINT_MS,
    });
    const { status, stop } = machine.running();
    expect(stop).toBe(false);
    expect(status).toMatchObject({
      dwCurrentState: SERVICE_RUNNING,
      dwControlsAccepted: SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN,
      dwCheckPoint: 0,
      dwWaitHint: 0,
    });

    const control = machine.control(SERVICE_CONTROL_STOP);
    expect(control).toMatchObject({
      reply: 0,
      stop: true,
      status: {
        dwCurrentState: SERVICE_STOP_PENDING,
        dwCheckPoint: 1,
        dwWaitHint: STOP_WAIT_HINT_MS,
        dwControlsAccepted: 0,
      },
    });
    expect(machine.progress()).toMatchObject({ dwCurrentState: SERVICE_STOP_PENDING, dwCheckPoint: 2 });
    expect(machine.progress()).toMatchObject({ dwCheckPoint: 3 });
    expect(machine.stopped()).toMatchObject({
      dwCurrentState: SERVICE_STOPPED,
      dwWin32ExitCode: 0,
      dwCheckPoint: 0,
      dwWaitHint: 0,
    });
    expect(machine.progress()).toBeUndefined();
  });

  it('stops once: a second stop or a shutdown while stopping changes nothing', () => {
    const machine = new ServiceStateMachine();
    machine.starting();
    machine.running();
    expect(machine.control(SERVICE_CONTROL_SHUTDOWN).stop).toBe(true);
    expect(machine.control(SERVICE_CONTROL_STOP)).toEqual({ reply: 0, stop: false });
    expect(machine.current).toBe(SERVICE_STOP_PENDING);
  });

  it('a stop that arrives while starting is honoured once the agent runs', () => {
    const machine = new ServiceStateMachine();
    machine.starting();
    expect(machine.control(SERVICE_CONTROL_STOP)).toEqual({ reply: 0, stop: false });
    const { status, stop } = machine.running();
    expect(stop).toBe(true);
    expect(status.dwCurrentState).toBe(SERVICE_STOP_PENDING);
  });

  it('answers interrogate with the current status and refuses controls it does not implement', () => {
    const machine = new ServiceStateMachine();
    machine.starting();
    machine.running();
    expect(machine.control(SERVICE_CONTROL_INTERROGATE)).toMatchObject({
      reply: 0,
      stop: false,
      status: { dwCurrentState: SERVICE_RUNNING },
    });
    // SERVICE_CONTROL_PAUSE: ERROR_CALL_NOT_IMPLEMENTED.
    expect(machine.control(2)).toEqual({ reply: 120, stop: false });
  });

  it('a failed stop reports a service-specific exit code, so the SCM runs the recovery actions', () => {
    const machine = new ServiceStateMachine();
    machine.starting();
    expect(machine.stopped(1)).toMatchObject({
      dwCurrentState: SERVICE_STOPPED,
      dwWin32ExitCode: 1066,
      dwServiceSpecificExitCode: 1,
    });
  });
});
