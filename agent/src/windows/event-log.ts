/**
 * Writes the agent's events (event-ids.ts) to the Windows Application log, and registers or removes
 * the event source. The source's message file is .NET's EventLogMessages.dll, present on every
 * supported Windows Server, whose every message is "%1": Event Viewer then shows the event's own text
 * instead of "the description for Event ID ... cannot be found".
 */
import {
  advapi32,
  ERROR_FILE_NOT_FOUND,
  ERROR_SUCCESS,
  HKEY_LOCAL_MACHINE,
  KEY_ALL_ACCESS,
  REG_DWORD,
  REG_EXPAND_SZ,
  REG_OPTION_NON_VOLATILE,
  Win32Error,
  type Handle,
} from './advapi32.js';
import { EVENT_SOURCE, EVENTS, EventType, type EventName } from './event-ids.js';

export const EVENT_SOURCE_KEY = `SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\${EVENT_SOURCE}`;
export const MESSAGE_FILE = '%SystemRoot%\\Microsoft.NET\\Framework64\\v4.0.30319\\EventLogMessages.dll';
const TYPES_SUPPORTED = EventType.error | EventType.warning | EventType.information;

function utf16z(text: string): Buffer {
  return Buffer.from(`${text}\0`, 'utf16le');
}

function dword(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(value);
  return buf;
}

/** Creates HKLM\...\EventLog\Application\rasmon-agent (idempotent). Needs an administrator. */
export function registerEventSource(): void {
  const api = advapi32();
  const key: Handle[] = [null];
  const status = api.RegCreateKeyExW(
    HKEY_LOCAL_MACHINE,
    EVENT_SOURCE_KEY,
    0,
    null,
    REG_OPTION_NON_VOLATILE,
    KEY_ALL_ACCESS,
    null,
    key,
    [0],
  );
  if (status !== ERROR_SUCCESS) throw new Win32Error(`RegCreateKeyExW(HKLM\\${EVENT_SOURCE_KEY})`, status);
  try {
    for (const [name, type, data] of [
      ['EventMessageFile', REG_EXPAND_SZ, utf16z(MESSAGE_FILE)],
      ['TypesSupported', REG_DWORD, dword(TYPES_SUPPORTED)],
    ] as const) {
      const set = api.RegSetValueExW(key[0]!, name, 0, type, data, data.length);
      if (set !== ERROR_SUCCESS) throw new Win32Error(`RegSetValueExW(${name})`, set);
    }
  } finally {
    api.RegCloseKey(key[0]!);
  }
}

/** Removes the source's key; absent is fine. */
export function unregisterEventSource(): void {
  const api = advapi32();
  const status = api.RegDeleteTreeW(HKEY_LOCAL_MACHINE, EVENT_SOURCE_KEY);
  if (status !== ERROR_SUCCESS && status !== ERROR_FILE_NOT_FOUND)
    throw new Win32Error(`RegDeleteTreeW(HKLM\\${EVENT_SOURCE_KEY})`, status);
  const key = api.RegDeleteKeyW(HKEY_LOCAL_MACHINE, EVENT_SOURCE_KEY);
  if (key !== ERROR_SUCCESS && key !== ERROR_FILE_NOT_FOUND)
    throw new Win32Error(`RegDeleteKeyW(HKLM\\${EVENT_SOURCE_KEY})`, key);
}

/** True when the source's key exists. */
export function eventSourceRegistered(): boolean {
  const api = advapi32();
  const key: Handle[] = [null];
  const KEY_READ = 0x20019;
  const status = api.RegOpenKeyExW(HKEY_LOCAL_MACHINE, EVENT_SOURCE_KEY, 0, KEY_READ, key);
  if (status === ERROR_SUCCESS) api.RegCloseKey(key[0]!);
  return status === ERROR_SUCCESS;
}

/** The text an event carries: its summary, then the detail. */
export function eventText(name: EventName, detail?: string): string {
  const event = EVENTS[name];
  // The Event Log limits one insertion string to 31,839 characters; keep far below.
  const text = detail ? `${event.summary}\r\n\r\n${detail}` : event.summary;
  return text.length > 4000 ? `${text.slice(0, 4000)}...` : text;
}

export class EventLog {
  private handle: Handle;

  private constructor(handle: Handle) {
    this.handle = handle;
  }

  /** Opens the source; writes fail silently afterwards if the log is unavailable (never fatal). */
  static open(): EventLog {
    const api = advapi32();
    const handle = api.RegisterEventSourceW(null, EVENT_SOURCE);
    if (!handle) throw new Win32Error('RegisterEventSourceW', api.GetLastError());
    return new EventLog(handle);
  }

  /** Writes one event; false when the Event Log refused it. */
  write(name: EventName, detail?: string): boolean {
    if (!this.handle) return false;
    const api = advapi32();
    const event = EVENTS[name];
    return (
      api.ReportEventW(
        this.handle,
        EventType[event.level],
        0,
        event.id,
        null,
        1,
        0,
        [eventText(name, detail)],
        null,
      ) !== 0
    );
  }

  close(): void {
    if (!this.handle) return;
    advapi32().DeregisterEventSource(this.handle);
    this.handle = null;
  }
}
