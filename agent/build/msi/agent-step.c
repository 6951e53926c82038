/*
 * rasmon-msi.dll, in the MSI's Binary table, holds the package's custom actions:
 *
 * RunAgentStep runs a step of the installed rasmon-agent.exe (`service setup`, `service
 * remove-data`) and puts what the step prints into the installation's log, so that a refused
 * install says why in the log (msiexec /l*v) and, with a user interface, in a message box. An EXE
 * custom action could not: Windows Installer keeps no output of the programs it runs.
 *
 * WaitForAgentExit waits, on uninstall and upgrade, until no process runs the installed exe any
 * more: the service reports STOPPED a moment before its process ends, and RemoveFiles must not find
 * the exe still mapped (a locked file is left behind, or removed only at the next reboot).
 *
 * CustomActionData (set by a type 51 action, see rasmon-agent.wxs): the step's command line, then
 * optionally a newline and the agent token. The token goes to the step in the environment variable
 * RASMON_SETUP_TOKEN, never on a command line (a deferred action's command line is logged).
 *
 * The step's output goes to a temporary file and is read after it ends: no pipe to deadlock on.
 *
 * https://learn.microsoft.com/windows/win32/msi/custom-action-type-1 (DLL in the Binary table)
 * https://learn.microsoft.com/windows/win32/msi/obtaining-context-information-for-deferred-execution-custom-actions
 * https://learn.microsoft.com/windows/win32/api/msiquery/nf-msiquery-msiprocessmessage
 */
#define WIN32_LEAN_AND_MEAN
#define UNICODE
#include <windows.h>
#include <msi.h>
#include <msiquery.h>
#include <tlhelp32.h>
#include <stdlib.h>
#include <wchar.h>

#define TOKEN_VARIABLE L"RASMON_SETUP_TOKEN"
/* A step that has not ended after this long is stuck: the collector check inside it waits 10 s. */
#define STEP_TIMEOUT_MS (5 * 60 * 1000)
/* The service announces 15 s to stop; its process ends right after it reports STOPPED. */
#define EXIT_TIMEOUT_MS (30 * 1000)

static void message(MSIHANDLE install, INSTALLMESSAGE kind, const wchar_t *text) {
  MSIHANDLE record = MsiCreateRecord(1);
  if (!record) return;
  /* Field 0 is a template: "[1]" keeps brackets in the text from being read as properties. */
  MsiRecordSetStringW(record, 0, L"[1]");
  MsiRecordSetStringW(record, 1, text);
  MsiProcessMessage(install, kind, record);
  MsiCloseHandle(record);
}

/* An error: a message box with a user interface, a line in the log with /qn. */
static void error_message(MSIHANDLE install, const wchar_t *text) {
  message(install, (INSTALLMESSAGE)(INSTALLMESSAGE_ERROR | MB_OK | MB_ICONERROR), text);
}

#define PREFIX L"rasmon-agent: "

/* The text without the exe's own "rasmon-agent: " (its errors start with it). */
static const wchar_t *unprefixed(const wchar_t *text) {
  size_t length = wcslen(PREFIX);
  return wcsncmp(text, PREFIX, length) == 0 ? text + length : text;
}

static void log_line(MSIHANDLE install, const wchar_t *text) {
  text = unprefixed(text);
  size_t length = wcslen(text) + 32;
  wchar_t *line = malloc(length * sizeof(wchar_t));
  if (!line) return;
  swprintf(line, length, PREFIX L"%ls", text);
  message(install, INSTALLMESSAGE_INFO, line);
  free(line);
}

static wchar_t *get_property(MSIHANDLE install, const wchar_t *name) {
  DWORD size = 0;
  wchar_t empty[1] = L"";
  if (MsiGetPropertyW(install, name, empty, &size) != ERROR_MORE_DATA) return calloc(1, sizeof(wchar_t));
  size += 1;
  wchar_t *value = calloc(size, sizeof(wchar_t));
  if (value && MsiGetPropertyW(install, name, value, &size) != ERROR_SUCCESS) value[0] = 0;
  return value;
}

/* The file's bytes as UTF-16 text (the agent prints UTF-8). */
static wchar_t *read_output(HANDLE file) {
  LARGE_INTEGER size;
  if (!GetFileSizeEx(file, &size) || size.QuadPart > 1 << 20) return NULL;
  DWORD bytes = (DWORD)size.QuadPart, got = 0;
  char *raw = malloc(bytes + 1);
  if (!raw) return NULL;
  SetFilePointer(file, 0, NULL, FILE_BEGIN);
  if (bytes > 0 && !ReadFile(file, raw, bytes, &got, NULL)) got = 0;
  int chars = MultiByteToWideChar(CP_UTF8, 0, raw, (int)got, NULL, 0);
  wchar_t *text = calloc((size_t)chars + 1, sizeof(wchar_t));
  if (text) MultiByteToWideChar(CP_UTF8, 0, raw, (int)got, text, chars);
  free(raw);
  return text;
}

/* Each line to the log; the last one is returned (the reason, when the step failed). */
static const wchar_t *log_lines(MSIHANDLE install, wchar_t *text) {
  const wchar_t *last = NULL;
  for (wchar_t *line = text; *line;) {
    wchar_t *end = line + wcscspn(line, L"\r\n");
    wchar_t *next = *end ? end + 1 : end;
    *end = 0;
    if (*line) {
      log_line(install, line);
      last = line;
    }
    line = next;
  }
  return last;
}

__declspec(dllexport) UINT __stdcall RunAgentStep(MSIHANDLE install) {
  UINT result = ERROR_INSTALL_FAILURE;
  wchar_t *data = get_property(install, L"CustomActionData");
  wchar_t *token = data ? wcschr(data, L'\n') : NULL;
  wchar_t temp_dir[MAX_PATH], output_path[MAX_PATH];
  HANDLE output = INVALID_HANDLE_VALUE;
  if (!data || !data[0]) {
    error_message(install, L"rasmon-agent: the custom action got no command line");
    goto done;
  }
  if (token) *token++ = 0;
  if (!GetTempPathW(MAX_PATH, temp_dir) || !GetTempFileNameW(temp_dir, L"ras", 0, output_path)) {
    error_message(install, L"rasmon-agent: no temporary file for the step's output");
    goto done;
  }
  SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
  output = CreateFileW(output_path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit,
                       CREATE_ALWAYS, FILE_ATTRIBUTE_TEMPORARY, NULL);
  if (output == INVALID_HANDLE_VALUE) {
    error_message(install, L"rasmon-agent: cannot create the step's output file");
    goto done;
  }
  SetEnvironmentVariableW(TOKEN_VARIABLE, token && token[0] ? token : NULL);
  STARTUPINFOW startup;
  ZeroMemory(&startup, sizeof startup);
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = NULL;
  startup.hStdOutput = output;
  startup.hStdError = output;
  PROCESS_INFORMATION process;
  BOOL started = CreateProcessW(NULL, data, NULL, NULL, TRUE, CREATE_NO_WINDOW, NULL, NULL, &startup, &process);
  DWORD start_error = GetLastError();
  SetEnvironmentVariableW(TOKEN_VARIABLE, NULL);
  if (!started) {
    wchar_t text[128];
    swprintf(text, 128, L"rasmon-agent: cannot start rasmon-agent.exe (error %lu)", start_error);
    error_message(install, text);
    goto done;
  }
  DWORD exit_code = 1;
  if (WaitForSingleObject(process.hProcess, STEP_TIMEOUT_MS) != WAIT_OBJECT_0) {
    TerminateProcess(process.hProcess, 1);
    error_message(install, L"rasmon-agent: the step did not end within 5 minutes");
  } else {
    GetExitCodeProcess(process.hProcess, &exit_code);
  }
  CloseHandle(process.hThread);
  CloseHandle(process.hProcess);
  wchar_t *text = read_output(output);
  const wchar_t *last = text ? log_lines(install, text) : NULL;
  if (exit_code == 0) {
    result = ERROR_SUCCESS;
  } else {
    size_t length = (last ? wcslen(last) : 0) + 64;
    wchar_t *reason = malloc(length * sizeof(wchar_t));
    if (reason) {
      swprintf(reason, length, L"rasmon agent setup failed (exit code %lu): %ls", exit_code,
               last ? unprefixed(last) : L"no output");
      error_message(install, reason);
      free(reason);
    }
  }
  free(text);
done:
  if (output != INVALID_HANDLE_VALUE) {
    CloseHandle(output);
    DeleteFileW(output_path);
  }
  free(data);
  return result;
}

/* Ends when no process whose image is CustomActionData (the installed exe) is left, or after 30 s. */
__declspec(dllexport) UINT __stdcall WaitForAgentExit(MSIHANDLE install) {
  wchar_t *exe = get_property(install, L"CustomActionData");
  if (!exe || !exe[0]) {
    free(exe);
    return ERROR_SUCCESS;
  }
  HANDLE snapshot = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snapshot != INVALID_HANDLE_VALUE) {
    PROCESSENTRY32W entry;
    entry.dwSize = sizeof entry;
    for (BOOL more = Process32FirstW(snapshot, &entry); more; more = Process32NextW(snapshot, &entry)) {
      if (_wcsicmp(entry.szExeFile, L"rasmon-agent.exe") != 0) continue;
      HANDLE process = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, entry.th32ProcessID);
      if (!process) continue;
      wchar_t image[MAX_PATH * 2];
      DWORD length = MAX_PATH * 2;
      if (QueryFullProcessImageNameW(process, 0, image, &length) && _wcsicmp(image, exe) == 0) {
        wchar_t line[160];
        swprintf(line, 160, L"waiting for rasmon-agent.exe (pid %lu) to end", entry.th32ProcessID);
        log_line(install, line);
        if (WaitForSingleObject(process, EXIT_TIMEOUT_MS) != WAIT_OBJECT_0)
          log_line(install, L"WARNING rasmon-agent.exe still runs after 30 s: its file may stay until a reboot");
      }
      CloseHandle(process);
    }
    CloseHandle(snapshot);
  }
  free(exe);
  return ERROR_SUCCESS;
}
