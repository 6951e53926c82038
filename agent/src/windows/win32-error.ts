/**
 * The Win32 error codes the `wts` source acts on, and an answer that is either a value or the
 * GetLastError code of the call that failed: a failure is told, never mistaken for "nothing".
 */

/** ERROR_FILE_NOT_FOUND: WTSQuerySessionInformationW and WTSQueryUserToken on a session that ended. */
export const ERROR_FILE_NOT_FOUND = 2;
/** ERROR_NO_TOKEN: WTSQueryUserToken on a session whose user token is not there (yet, or any more). */
export const ERROR_NO_TOKEN = 1008;
/** ERROR_PRIVILEGE_NOT_HELD: WTSQueryUserToken needs SE_TCB_NAME, which LocalSystem holds. */
export const ERROR_PRIVILEGE_NOT_HELD = 1314;
/** ERROR_CTX_WINSTATION_NOT_FOUND: "The specified session cannot be found". */
export const ERROR_CTX_WINSTATION_NOT_FOUND = 7022;

/** A call's value, or the Win32 error it failed with. */
export type Win32Answer<T> = { ok: true; value: T } | { ok: false; win32Error: number };

export const answered = <T>(value: T): Win32Answer<T> => ({ ok: true, value });
export const failed = <T>(win32Error: number): Win32Answer<T> => ({ ok: false, win32Error });

/** The session ended between the enumeration and this call: it is dropped, not reported. */
export function sessionVanished(answer: Win32Answer<unknown>): boolean {
  return (
    !answer.ok && (answer.win32Error === ERROR_FILE_NOT_FOUND || answer.win32Error === ERROR_CTX_WINSTATION_NOT_FOUND)
  );
}

/** What an error means for reading a session's token, in words for the log. */
export function tokenErrorText(win32Error: number): string {
  switch (win32Error) {
    case ERROR_NO_TOKEN:
      return 'the session has no user token (ERROR_NO_TOKEN)';
    case ERROR_PRIVILEGE_NOT_HELD:
      return 'the agent lacks the "act as part of the operating system" privilege (ERROR_PRIVILEGE_NOT_HELD): run it as the service, which runs as LocalSystem';
    default:
      return `Windows error ${win32Error}`;
  }
}
