import { RasmonError } from '@rasmon/protocol/kit';

/** A Windows source asked to read on another system. */
export class WindowsOnlyError extends RasmonError {
  constructor(source: 'wts' | 'quser') {
    super(
      'RASMON_WINDOWS_ONLY',
      `the ${source} source is Windows only (this is ${process.platform}); use source "command" or "simulate" here, or "sessions --input FILE" to read a saved output`,
    );
    this.name = 'WindowsOnlyError';
  }
}
