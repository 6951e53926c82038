/**
 * `service install | uninstall | status`: the Service Control Manager calls (advapi32 through koffi,
 * no sc.exe, no PowerShell). Install registers `rasmon-agent` as LocalSystem, automatic start,
 * restarted after a failure, with its Event Log source, and starts it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  advapi32,
  DELETE,
  ERROR_INVALID_LEVEL,
  ERROR_SERVICE_DOES_NOT_EXIST,
  ERROR_SERVICE_NOT_ACTIVE,
  SC_ACTION_RESTART,
  SC_MANAGER_ALL_ACCESS,
  SC_MANAGER_CONNECT,
  SERVICE_ALL_ACCESS,
  SERVICE_AUTO_START,
  SERVICE_CONFIG_DESCRIPTION,
  SERVICE_CONFIG_FAILURE_ACTIONS,
  SERVICE_CONFIG_FAILURE_ACTIONS_FLAG,
  SERVICE_CONTROL_STOP,
  SERVICE_ERROR_NORMAL,
  SERVICE_QUERY_STATUS,
  SERVICE_STOP,
  SERVICE_WIN32_OWN_PROCESS,
  Win32Error,
  type Advapi32,
  type Handle,
  type ScAction,
  type ServiceStatusProcess,
} from './advapi32.js';
import {
  SERVICE_RUNNING,
  SERVICE_STOPPED,
  START_WAIT_HINT_MS,
  STATE_NAMES,
  STOP_WAIT_HINT_MS,
} from './service-state.js';

export const SERVICE_NAME = 'rasmon-agent';
export const SERVICE_DISPLAY_NAME = 'rasmon agent';
export const SERVICE_DESCRIPTION =
  "Streams this RD Session Host's sessions to the rasmon collector (Parallels RAS license monitoring). Stopping it stops the reporting of this host.";

/** Restart after 10 s, then 60 s, then 5 minutes; the count starts again after a day without failure. */
export const RECOVERY: { resetSeconds: number; actions: ScAction[] } = {
  resetSeconds: 24 * 3600,
  actions: [
    { Type: SC_ACTION_RESTART, Delay: 10_000 },
    { Type: SC_ACTION_RESTART, Delay: 60_000 },
    { Type: SC_ACTION_RESTART, Delay: 300_000 },
  ],
};

export interface ServiceState {
  state: number;
  name: string;
  pid: number;
  exitCode: number;
  serviceExitCode: number;
}

function withScm<T>(access: number, use: (api: Advapi32, scm: Handle) => T): T {
  const api = advapi32();
  const scm = api.OpenSCManagerW(null, null, access);
  if (!scm) throw new Win32Error('OpenSCManagerW', api.GetLastError());
  try {
    return use(api, scm);
  } finally {
    api.CloseServiceHandle(scm);
  }
}

function queryStatus(api: Advapi32, service: Handle): ServiceState {
  const status: Partial<ServiceStatusProcess> = {};
  const SC_STATUS_PROCESS_INFO = 0;
  if (!api.QueryServiceStatusEx(service, SC_STATUS_PROCESS_INFO, status, 36, [0])) {
    throw new Win32Error('QueryServiceStatusEx', api.GetLastError());
  }
  const state = status.dwCurrentState ?? 0;
  return {
    state,
    name: STATE_NAMES[state] ?? `state ${state}`,
    pid: status.dwProcessId ?? 0,
    exitCode: status.dwWin32ExitCode ?? 0,
    serviceExitCode: status.dwServiceSpecificExitCode ?? 0,
  };
}

async function waitFor(api: Advapi32, service: Handle, wanted: number, timeoutMs: number): Promise<ServiceState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = queryStatus(api, service);
    if (status.state === wanted || Date.now() > deadline) return status;
    // A start that ends in STOPPED will not reach RUNNING: stop waiting.
    if (wanted === SERVICE_RUNNING && status.state === SERVICE_STOPPED) return status;
    await sleep(250);
  }
}

/**
 * Creates the service with `commandLine` (see command-line.ts), configures it and starts it; a
 * service created but not configured is deleted again. `note` hears what this Windows lacks.
 */
export async function installService(
  commandLine: string,
  note: (line: string) => void = () => undefined,
): Promise<ServiceState> {
  const api = advapi32();
  const scm = api.OpenSCManagerW(null, null, SC_MANAGER_ALL_ACCESS);
  if (!scm) throw new Win32Error('OpenSCManagerW', api.GetLastError());
  let service: Handle = null;
  try {
    service = api.CreateServiceW(
      scm,
      SERVICE_NAME,
      SERVICE_DISPLAY_NAME,
      SERVICE_ALL_ACCESS,
      SERVICE_WIN32_OWN_PROCESS,
      SERVICE_AUTO_START,
      SERVICE_ERROR_NORMAL,
      commandLine,
      null,
      null,
      null,
      // No account: LocalSystem.
      null,
      null,
    );
    if (!service) throw new Win32Error('CreateServiceW', api.GetLastError());
    try {
      configureService(api, service, note);
    } catch (err) {
      api.DeleteService(service);
      throw err;
    }
    if (!api.StartServiceW(service, 0, null)) throw new Win32Error('StartServiceW', api.GetLastError());
    return await waitFor(api, service, SERVICE_RUNNING, START_WAIT_HINT_MS + 5000);
  } finally {
    if (service) api.CloseServiceHandle(service);
    api.CloseServiceHandle(scm);
  }
}

function configureService(api: Advapi32, service: Handle, note: (line: string) => void): void {
  if (
    !api.ChangeServiceConfig2W_description(service, SERVICE_CONFIG_DESCRIPTION, { lpDescription: SERVICE_DESCRIPTION })
  ) {
    throw new Win32Error('ChangeServiceConfig2W(SERVICE_CONFIG_DESCRIPTION)', api.GetLastError());
  }
  const actions = RECOVERY.actions;
  const memory = api.k.alloc(api.SC_ACTION, actions.length) as bigint;
  try {
    api.k.encode(memory, api.k.array(api.SC_ACTION, actions.length), actions);
    const ok = api.ChangeServiceConfig2W_failureActions(service, SERVICE_CONFIG_FAILURE_ACTIONS, {
      dwResetPeriod: RECOVERY.resetSeconds,
      lpRebootMsg: null,
      lpCommand: null,
      cActions: actions.length,
      lpsaActions: memory,
    });
    if (!ok) throw new Win32Error('ChangeServiceConfig2W(SERVICE_CONFIG_FAILURE_ACTIONS)', api.GetLastError());
  } finally {
    api.k.free(memory);
  }
  // Also restart when the agent stops itself with an error, not only when the process dies.
  if (
    !api.ChangeServiceConfig2W_failureActionsFlag(service, SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, {
      fFailureActionsOnNonCrashFailures: 1,
    })
  ) {
    const code = api.GetLastError();
    // Every Windows since Vista has it; wine does not.
    if (code !== ERROR_INVALID_LEVEL)
      throw new Win32Error('ChangeServiceConfig2W(SERVICE_CONFIG_FAILURE_ACTIONS_FLAG)', code);
    note('this system cannot restart the service after it stops on an error, only after a crash');
  }
}

/**
 * Sets the description and recovery actions of the installed service: what an MSI's ServiceInstall
 * table cannot say (its setup step calls this once the MSI has created the service).
 */
export function configureRecovery(note: (line: string) => void = () => undefined): void {
  withScm(SC_MANAGER_CONNECT, (api, scm) => {
    const service = api.OpenServiceW(scm, SERVICE_NAME, SERVICE_ALL_ACCESS);
    if (!service) throw new Win32Error('OpenServiceW', api.GetLastError());
    try {
      configureService(api, service, note);
    } finally {
      api.CloseServiceHandle(service);
    }
  });
}

/** Stops the service (waiting up to its stop wait hint) and deletes it; false when it was not installed. */
export async function uninstallService(): Promise<{ removed: boolean; lastState?: ServiceState }> {
  const api = advapi32();
  const scm = api.OpenSCManagerW(null, null, SC_MANAGER_CONNECT);
  if (!scm) throw new Win32Error('OpenSCManagerW', api.GetLastError());
  try {
    const service = api.OpenServiceW(scm, SERVICE_NAME, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
    if (!service) {
      const code = api.GetLastError();
      if (code === ERROR_SERVICE_DOES_NOT_EXIST) return { removed: false };
      throw new Win32Error('OpenServiceW', code);
    }
    try {
      let state = queryStatus(api, service);
      if (state.state !== SERVICE_STOPPED) {
        if (!api.ControlService(service, SERVICE_CONTROL_STOP, {})) {
          const code = api.GetLastError();
          if (code !== ERROR_SERVICE_NOT_ACTIVE) throw new Win32Error('ControlService(SERVICE_CONTROL_STOP)', code);
        }
        state = await waitFor(api, service, SERVICE_STOPPED, STOP_WAIT_HINT_MS + 5000);
        if (state.state !== SERVICE_STOPPED)
          throw new Error(`the service did not stop (it is ${state.name}); nothing removed`);
      }
      if (!api.DeleteService(service)) throw new Win32Error('DeleteService', api.GetLastError());
      return { removed: true, lastState: state };
    } finally {
      api.CloseServiceHandle(service);
    }
  } finally {
    api.CloseServiceHandle(scm);
  }
}

/** The service's state, or undefined when it is not installed. */
export function serviceStatus(): ServiceState | undefined {
  return withScm(SC_MANAGER_CONNECT, (api, scm) => {
    const service = api.OpenServiceW(scm, SERVICE_NAME, SERVICE_QUERY_STATUS);
    if (!service) {
      const code = api.GetLastError();
      if (code === ERROR_SERVICE_DOES_NOT_EXIST) return undefined;
      throw new Win32Error('OpenServiceW', code);
    }
    try {
      return queryStatus(api, service);
    } finally {
      api.CloseServiceHandle(service);
    }
  });
}
