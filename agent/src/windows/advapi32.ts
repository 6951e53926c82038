/**
 * The Win32 calls the service, the Event Log and the file ACLs need, bound once through koffi
 * (advapi32 and kernel32 only; every one exists since Windows Server 2008). Loaded on first use, so
 * the Linux agent never loads koffi.
 */
import { RasmonError } from '@rasmon/protocol/kit';
import { loadKoffi, type KoffiModule as Koffi } from './koffi-loader.js';
/** A handle (SC_HANDLE, HKEY, HANDLE...): a pointer, null when a call failed. */
export type Handle = bigint | null;

export const ERROR_SUCCESS = 0;
export const ERROR_FILE_NOT_FOUND = 2;
export const ERROR_ACCESS_DENIED = 5;
export const ERROR_SERVICE_DOES_NOT_EXIST = 1060;
export const ERROR_SERVICE_CANNOT_ACCEPT_CTRL = 1061;
export const ERROR_SERVICE_NOT_ACTIVE = 1062;
export const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT = 1063;
export const ERROR_SERVICE_ALREADY_RUNNING = 1056;
export const ERROR_SERVICE_EXISTS = 1073;
export const ERROR_SERVICE_MARKED_FOR_DELETE = 1072;
export const ERROR_CALL_NOT_IMPLEMENTED = 120;
export const ERROR_INVALID_LEVEL = 124;

export const SC_MANAGER_ALL_ACCESS = 0xf003f;
export const SC_MANAGER_CONNECT = 0x0001;
export const SERVICE_ALL_ACCESS = 0xf01ff;
export const SERVICE_QUERY_STATUS = 0x0004;
export const SERVICE_START = 0x0010;
export const SERVICE_STOP = 0x0020;
export const DELETE = 0x10000;
export const SERVICE_WIN32_OWN_PROCESS = 0x10;
export const SERVICE_AUTO_START = 2;
export const SERVICE_ERROR_NORMAL = 1;
export const SERVICE_CONTROL_STOP = 1;
export const SERVICE_CONFIG_DESCRIPTION = 1;
export const SERVICE_CONFIG_FAILURE_ACTIONS = 2;
export const SERVICE_CONFIG_FAILURE_ACTIONS_FLAG = 4;
export const SC_ACTION_NONE = 0;
export const SC_ACTION_RESTART = 1;

export const HKEY_LOCAL_MACHINE = 0xffffffff80000002n;
export const KEY_ALL_ACCESS = 0xf003f;
export const REG_OPTION_NON_VOLATILE = 0;
export const REG_EXPAND_SZ = 2;
export const REG_DWORD = 4;

export const SE_FILE_OBJECT = 1;
export const OWNER_SECURITY_INFORMATION = 0x1;
export const DACL_SECURITY_INFORMATION = 0x4;
export const PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000;
export const SDDL_REVISION_1 = 1;
export const TOKEN_QUERY = 0x8;
export const TOKEN_USER_CLASS = 1;

export interface ServiceStatus {
  dwServiceType: number;
  dwCurrentState: number;
  dwControlsAccepted: number;
  dwWin32ExitCode: number;
  dwServiceSpecificExitCode: number;
  dwCheckPoint: number;
  dwWaitHint: number;
}

export interface ServiceStatusProcess extends ServiceStatus {
  dwProcessId: number;
  dwServiceFlags: number;
}

export interface ScAction {
  Type: number;
  Delay: number;
}

type Fn<A extends unknown[], R> = ((...args: A) => R) & {
  async: (...args: [...A, (err: unknown, result: R) => void]) => void;
};

function bind(k: Koffi) {
  const advapi32 = k.load('advapi32.dll');
  const kernel32 = k.load('kernel32.dll');

  // SERVICE_STATUS_PROCESS begins with SERVICE_STATUS's fields, in the same order (winsvc.h).
  const statusFields = {
    dwServiceType: 'uint32',
    dwCurrentState: 'uint32',
    dwControlsAccepted: 'uint32',
    dwWin32ExitCode: 'uint32',
    dwServiceSpecificExitCode: 'uint32',
    dwCheckPoint: 'uint32',
    dwWaitHint: 'uint32',
  } as const;
  const SERVICE_STATUS = k.struct('SERVICE_STATUS', statusFields);
  k.struct('SERVICE_STATUS_PROCESS', {
    ...statusFields,
    dwProcessId: 'uint32',
    dwServiceFlags: 'uint32',
  });
  const SC_ACTION = k.struct('SC_ACTION', { Type: 'int', Delay: 'uint32' });
  k.struct('SERVICE_DESCRIPTIONW', { lpDescription: 'str16' });
  k.struct('SERVICE_FAILURE_ACTIONSW', {
    dwResetPeriod: 'uint32',
    lpRebootMsg: 'str16',
    lpCommand: 'str16',
    cActions: 'uint32',
    lpsaActions: k.pointer(SC_ACTION),
  });
  k.struct('SERVICE_FAILURE_ACTIONS_FLAG', { fFailureActionsOnNonCrashFailures: 'int' });
  const ServiceMain = k.proto('void __stdcall LPSERVICE_MAIN_FUNCTIONW(uint32 argc, void *argv)');
  const HandlerEx = k.proto(
    'uint32 __stdcall LPHANDLER_FUNCTION_EX(uint32 control, uint32 eventType, void *eventData, void *context)',
  );
  k.struct('SERVICE_TABLE_ENTRYW', { lpServiceName: 'str16', lpServiceProc: k.pointer(ServiceMain) });

  return {
    k,
    SERVICE_STATUS,
    SC_ACTION,
    ServiceMain,
    HandlerEx,
    OpenSCManagerW: advapi32.func('void *__stdcall OpenSCManagerW(str16 machine, str16 database, uint32 access)') as Fn<
      [string | null, string | null, number],
      Handle
    >,
    CreateServiceW: advapi32.func(
      'void *__stdcall CreateServiceW(void *scm, str16 name, str16 displayName, uint32 access, uint32 serviceType, uint32 startType, uint32 errorControl, str16 binaryPath, str16 loadOrderGroup, void *tagId, str16 dependencies, str16 startName, str16 password)',
    ) as Fn<[Handle, string, string, number, number, number, number, string, null, null, null, null, null], Handle>,
    OpenServiceW: advapi32.func('void *__stdcall OpenServiceW(void *scm, str16 name, uint32 access)') as Fn<
      [Handle, string, number],
      Handle
    >,
    CloseServiceHandle: advapi32.func('int __stdcall CloseServiceHandle(void *handle)') as Fn<[Handle], number>,
    StartServiceW: advapi32.func('int __stdcall StartServiceW(void *service, uint32 argc, void *argv)') as Fn<
      [Handle, number, null],
      number
    >,
    ControlService: advapi32.func(
      'int __stdcall ControlService(void *service, uint32 control, _Out_ SERVICE_STATUS *status)',
    ) as Fn<[Handle, number, Partial<ServiceStatus>], number>,
    DeleteService: advapi32.func('int __stdcall DeleteService(void *service)') as Fn<[Handle], number>,
    QueryServiceStatusEx: advapi32.func(
      'int __stdcall QueryServiceStatusEx(void *service, int infoLevel, _Out_ SERVICE_STATUS_PROCESS *buffer, uint32 size, _Out_ uint32 *needed)',
    ) as Fn<[Handle, number, Partial<ServiceStatusProcess>, number, number[]], number>,
    ChangeServiceConfig2W_description: advapi32.func(
      'int __stdcall ChangeServiceConfig2W(void *service, uint32 level, SERVICE_DESCRIPTIONW *info)',
    ) as Fn<[Handle, number, { lpDescription: string }], number>,
    ChangeServiceConfig2W_failureActions: advapi32.func(
      'int __stdcall ChangeServiceConfig2W(void *service, uint32 level, SERVICE_FAILURE_ACTIONSW *info)',
    ) as Fn<
      [
        Handle,
        number,
        { dwResetPeriod: number; lpRebootMsg: null; lpCommand: null; cActions: number; lpsaActions: bigint },
      ],
      number
    >,
    ChangeServiceConfig2W_failureActionsFlag: advapi32.func(
      'int __stdcall ChangeServiceConfig2W(void *service, uint32 level, SERVICE_FAILURE_ACTIONS_FLAG *info)',
    ) as Fn<[Handle, number, { fFailureActionsOnNonCrashFailures: number }], number>,
    StartServiceCtrlDispatcherW: advapi32.func(
      'int __stdcall StartServiceCtrlDispatcherW(SERVICE_TABLE_ENTRYW *table)',
    ) as Fn<[Array<{ lpServiceName: string | null; lpServiceProc: bigint | null }>], number>,
    RegisterServiceCtrlHandlerExW: advapi32.func(
      'void *__stdcall RegisterServiceCtrlHandlerExW(str16 name, LPHANDLER_FUNCTION_EX *handler, void *context)',
    ) as Fn<[string, bigint, null], Handle>,
    SetServiceStatus: advapi32.func('int __stdcall SetServiceStatus(void *handle, SERVICE_STATUS *status)') as Fn<
      [Handle, ServiceStatus],
      number
    >,

    RegisterEventSourceW: advapi32.func('void *__stdcall RegisterEventSourceW(str16 server, str16 source)') as Fn<
      [null, string],
      Handle
    >,
    DeregisterEventSource: advapi32.func('int __stdcall DeregisterEventSource(void *handle)') as Fn<[Handle], number>,
    ReportEventW: advapi32.func(
      'int __stdcall ReportEventW(void *log, uint16 type, uint16 category, uint32 eventId, void *sid, uint16 numStrings, uint32 dataSize, str16 *strings, void *data)',
    ) as Fn<[Handle, number, number, number, null, number, number, string[], null], number>,

    RegCreateKeyExW: advapi32.func(
      'int32 __stdcall RegCreateKeyExW(void *key, str16 subKey, uint32 reserved, str16 className, uint32 options, uint32 sam, void *security, _Out_ void **result, _Out_ uint32 *disposition)',
    ) as Fn<[bigint, string, number, null, number, number, null, Handle[], number[]], number>,
    RegSetValueExW: advapi32.func(
      'int32 __stdcall RegSetValueExW(void *key, str16 name, uint32 reserved, uint32 type, const uint8 *data, uint32 size)',
    ) as Fn<[Handle, string, number, number, Buffer, number], number>,
    RegDeleteTreeW: advapi32.func('int32 __stdcall RegDeleteTreeW(void *key, str16 subKey)') as Fn<
      [bigint, string],
      number
    >,
    RegDeleteKeyW: advapi32.func('int32 __stdcall RegDeleteKeyW(void *key, str16 subKey)') as Fn<
      [bigint, string],
      number
    >,
    RegOpenKeyExW: advapi32.func(
      'int32 __stdcall RegOpenKeyExW(void *key, str16 subKey, uint32 options, uint32 sam, _Out_ void **result)',
    ) as Fn<[bigint, string, number, number, Handle[]], number>,
    RegCloseKey: advapi32.func('int32 __stdcall RegCloseKey(void *key)') as Fn<[Handle], number>,

    ConvertStringSecurityDescriptorToSecurityDescriptorW: advapi32.func(
      'int __stdcall ConvertStringSecurityDescriptorToSecurityDescriptorW(str16 sddl, uint32 revision, _Out_ void **descriptor, _Out_ uint32 *size)',
    ) as Fn<[string, number, Handle[], number[]], number>,
    ConvertSecurityDescriptorToStringSecurityDescriptorW: advapi32.func(
      'int __stdcall ConvertSecurityDescriptorToStringSecurityDescriptorW(void *descriptor, uint32 revision, uint32 information, _Out_ void **sddl, _Out_ uint32 *length)',
    ) as Fn<[Handle, number, number, Handle[], number[]], number>,
    GetSecurityDescriptorDacl: advapi32.func(
      'int __stdcall GetSecurityDescriptorDacl(void *descriptor, _Out_ int *present, _Out_ void **dacl, _Out_ int *defaulted)',
    ) as Fn<[Handle, number[], Handle[], number[]], number>,
    GetSecurityDescriptorOwner: advapi32.func(
      'int __stdcall GetSecurityDescriptorOwner(void *descriptor, _Out_ void **owner, _Out_ int *defaulted)',
    ) as Fn<[Handle, Handle[], number[]], number>,
    SetNamedSecurityInfoW: advapi32.func(
      'uint32 __stdcall SetNamedSecurityInfoW(str16 name, int objectType, uint32 information, void *owner, void *group, void *dacl, void *sacl)',
    ) as Fn<[string, number, number, Handle, null, Handle, null], number>,
    OpenProcessToken: advapi32.func(
      'int __stdcall OpenProcessToken(void *process, uint32 access, _Out_ void **token)',
    ) as Fn<[Handle, number, Handle[]], number>,
    GetTokenInformation: advapi32.func(
      'int __stdcall GetTokenInformation(void *token, int infoClass, _Out_ uint8 *info, uint32 length, _Out_ uint32 *needed)',
    ) as Fn<[Handle, number, Buffer | null, number, number[]], number>,
    ConvertSidToStringSidW: advapi32.func('int __stdcall ConvertSidToStringSidW(void *sid, _Out_ void **text)') as Fn<
      [Handle, Handle[]],
      number
    >,
    ConvertStringSidToSidW: advapi32.func('int __stdcall ConvertStringSidToSidW(str16 text, _Out_ void **sid)') as Fn<
      [string, Handle[]],
      number
    >,
    LookupAccountSidW: advapi32.func(
      'int __stdcall LookupAccountSidW(str16 system, void *sid, _Out_ uint8 *name, _Inout_ uint32 *nameLength, _Out_ uint8 *domain, _Inout_ uint32 *domainLength, _Out_ int *use)',
    ) as Fn<[null, Handle, Buffer, number[], Buffer, number[], number[]], number>,
    GetNamedSecurityInfoW: advapi32.func(
      'uint32 __stdcall GetNamedSecurityInfoW(str16 name, int objectType, uint32 information, void *owner, void *group, void *dacl, void *sacl, _Out_ void **descriptor)',
    ) as Fn<[string, number, number, null, null, null, null, Handle[]], number>,

    GetLastError: kernel32.func('uint32 __stdcall GetLastError()') as Fn<[], number>,
    GetCurrentProcess: kernel32.func('void *__stdcall GetCurrentProcess()') as Fn<[], Handle>,
    CloseHandle: kernel32.func('int __stdcall CloseHandle(void *handle)') as Fn<[Handle], number>,
    LocalFree: kernel32.func('void *__stdcall LocalFree(void *memory)') as Fn<[Handle], Handle>,
  };
}

export type Advapi32 = ReturnType<typeof bind>;

let bound: Advapi32 | undefined;

/** The bindings; throws a clear error off Windows. */
export function advapi32(): Advapi32 {
  if (process.platform !== 'win32')
    throw new Error('the Windows service, Event Log and ACL calls exist only on Windows');
  bound ??= bind(loadKoffi());
  return bound;
}

/** A failed Win32 call: the function's name and the error code, with its usual meaning when known. */
export class Win32Error extends RasmonError {
  constructor(
    readonly call: string,
    readonly win32Code: number,
  ) {
    super('RASMON_WIN32', `${call} failed: ${describeWin32(win32Code)}`);
    this.name = 'Win32Error';
  }
}

const MESSAGES: Record<number, string> = {
  [ERROR_FILE_NOT_FOUND]: 'file not found',
  [ERROR_ACCESS_DENIED]: 'access denied (run it from an elevated prompt, as Administrator)',
  [ERROR_SERVICE_DOES_NOT_EXIST]: 'the service is not installed',
  [ERROR_SERVICE_CANNOT_ACCEPT_CTRL]: 'the service cannot accept a control now',
  [ERROR_SERVICE_NOT_ACTIVE]: 'the service is not running',
  [ERROR_FAILED_SERVICE_CONTROLLER_CONNECT]: 'not started by the Service Control Manager (use `service install`)',
  [ERROR_SERVICE_ALREADY_RUNNING]: 'the service is already running',
  [ERROR_SERVICE_EXISTS]: 'the service is already installed (run `service uninstall` first)',
  [ERROR_SERVICE_MARKED_FOR_DELETE]: 'the service is marked for deletion: close services.msc and retry',
};

export function describeWin32(code: number): string {
  return `${MESSAGES[code] ?? 'error'} (Win32 error ${code})`;
}
