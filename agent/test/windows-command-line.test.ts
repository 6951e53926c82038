import { describe, expect, it } from 'vitest';
import { CommandLineError, quoteArgument, serviceCommandLine, splitCommandLine } from '../src/windows/command-line.js';

describe('service command line', () => {
  it('quotes the exe and the config path, so paths with spaces start the right program', () => {
    expect(
      serviceCommandLine('C:\\Program Files\\rasmon\\rasmon-agent.exe', 'C:\\ProgramData\\rasmon\\agent.yaml'),
    ).toBe('"C:\\Program Files\\rasmon\\rasmon-agent.exe" service run --config C:\\ProgramData\\rasmon\\agent.yaml');
    const line = serviceCommandLine(
      'C:\\Program Files\\rasmon\\rasmon-agent.exe',
      'C:\\Program Files\\rasmon\\my agent.yaml',
    );
    expect(splitCommandLine(line)).toEqual([
      'C:\\Program Files\\rasmon\\rasmon-agent.exe',
      'service',
      'run',
      '--config',
      'C:\\Program Files\\rasmon\\my agent.yaml',
    ]);
  });

  it('puts a script between node.exe and the arguments when not run as the exe', () => {
    const line = serviceCommandLine('C:\\node\\node.exe', 'D:\\cfg\\agent.yaml', [
      'C:\\agent dir\\bin\\rasmon-agent.js',
    ]);
    expect(splitCommandLine(line)).toEqual([
      'C:\\node\\node.exe',
      'C:\\agent dir\\bin\\rasmon-agent.js',
      'service',
      'run',
      '--config',
      'D:\\cfg\\agent.yaml',
    ]);
  });

  it('refuses relative paths: the SCM starts services in System32', () => {
    expect(() => serviceCommandLine('rasmon-agent.exe', 'C:\\agent.yaml')).toThrow(CommandLineError);
    expect(() => serviceCommandLine('C:\\rasmon-agent.exe', 'agent.yaml')).toThrow(/config file path must be absolute/);
    expect(() => serviceCommandLine('C:\\rasmon-agent.exe', '\\agent.yaml')).toThrow(/absolute/);
    expect(() => serviceCommandLine('C:\\rasmon-agent.exe', 'C:agent.yaml')).toThrow(/absolute/);
    expect(serviceCommandLine('C:\\rasmon-agent.exe', '\\\\fs01\\rasmon\\agent.yaml')).toContain(
      '\\\\fs01\\rasmon\\agent.yaml',
    );
  });

  it('refuses quotes and control characters in a path', () => {
    expect(() => serviceCommandLine('C:\\ras"mon.exe', 'C:\\agent.yaml')).toThrow(/quote/);
    expect(() => serviceCommandLine('C:\\rasmon.exe', 'C:\\agent\n.yaml')).toThrow(/control character/);
  });

  it('round-trips arguments through the MSVC quoting rules: backslashes before quotes, trailing backslashes', () => {
    for (const arg of [
      '',
      'plain',
      'with space',
      'C:\\dir with space\\',
      'a"b',
      'a\\"b',
      'a\\\\"b',
      '\\\\server\\share\\',
      '\t',
      'x\\',
    ]) {
      const line = `"C:\\x.exe" ${quoteArgument(arg)} next`;
      expect(splitCommandLine(line)).toEqual(['C:\\x.exe', arg, 'next']);
    }
    expect(quoteArgument('C:\\a b\\')).toBe('"C:\\a b\\\\"');
    expect(quoteArgument('plain\\path')).toBe('plain\\path');
  });
});
