/**
 * What the MSI's setup step makes of its properties (composeConfig): pure, so every combination is
 * checked here; test/windows-msi.test.ts runs the step itself under msiexec.
 */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { composeConfig, dataPaths, ServiceSetupError, type SetupProperties } from '../src/service-setup.js';

const paths = dataPaths('C:\\ProgramData\\rasmon');
const files: Record<string, string> = {
  'C:\\share\\token': 'token-from-share\r\nsecond line ignored\r\n',
  'C:\\share\\empty-token': '\r\n',
  'C:\\share\\own.yaml': '# mine\ncollector: wss://c.example:8443\nfarm: f1\ntokenFile: D:\\keys\\token\n',
};
const readFile = (path: string) => {
  const text = files[path];
  if (text === undefined) throw new Error('ENOENT');
  return text;
};
const compose = (properties: SetupProperties, existing?: string) =>
  composeConfig(properties, paths, existing, readFile);
const full = { collector: 'wss://c.example:8443', farm: 'f1', host: 'rdsh-01' };

describe('the MSI setup step composes agent.yaml from its properties', () => {
  it('a new install from COLLECTOR, FARM, TOKEN and HOSTNAME: source wts, spool and token under the data folder', () => {
    const composed = compose({ ...full, token: '  tok-1  ' });
    expect(composed.origin).toBe('properties');
    expect(composed.token).toBe('tok-1');
    expect(parse(composed.text)).toEqual({
      collector: 'wss://c.example:8443',
      farm: 'f1',
      host: 'rdsh-01',
      source: 'wts',
      tokenFile: 'C:\\ProgramData\\rasmon\\token',
      spool: { dir: 'C:\\ProgramData\\rasmon\\spool' },
    });
  });

  it('TOKENFILE: its first line is copied, and an empty or unreadable one is refused', () => {
    expect(compose({ ...full, tokenFile: 'C:\\share\\token' }).token).toBe('token-from-share');
    expect(() => compose({ ...full, tokenFile: 'C:\\share\\empty-token' })).toThrow(
      'TOKENFILE: C:\\share\\empty-token is empty',
    );
    expect(() => compose({ ...full, tokenFile: 'C:\\share\\absent' })).toThrow(
      'TOKENFILE: C:\\share\\absent cannot be read',
    );
  });

  it('without HOSTNAME the host is left to the machine name', () => {
    const { host: _host, ...rest } = full;
    expect(parse(compose({ ...rest, token: 't' }).text)).not.toHaveProperty('host');
  });

  it('empty properties (as msiexec passes unset ones) count as not given', () => {
    const composed = compose({ ...full, token: 't', tokenFile: '', source: '', configFile: ' ' });
    expect(parse(composed.text)).toMatchObject({ source: 'wts' });
  });

  it.each<[string, SetupProperties, string]>([
    ['no token', { ...full }, 'missing TOKEN or TOKENFILE'],
    ['no collector', { farm: 'f1', token: 't' }, 'missing COLLECTOR'],
    ['no farm nor collector', { token: 't' }, 'missing COLLECTOR, FARM'],
    ['both tokens', { ...full, token: 't', tokenFile: 'C:\\share\\token' }, 'TOKEN and TOKENFILE: give one'],
    ['an empty TOKEN line', { ...full, token: '\r\nx' }, 'TOKEN: is empty'],
    [
      'CONFIGFILE with others',
      { configFile: 'C:\\share\\own.yaml', farm: 'f2' },
      'CONFIGFILE replaces the other properties (FARM)',
    ],
    ['a relative CONFIGFILE', { configFile: 'own.yaml' }, 'CONFIGFILE: must be an absolute path'],
    [
      'an unreadable CONFIGFILE',
      { configFile: 'C:\\share\\absent.yaml' },
      'CONFIGFILE: C:\\share\\absent.yaml cannot be read',
    ],
  ])('refuses %s, naming the property', (_name, properties, message) => {
    expect(() => compose(properties)).toThrow(ServiceSetupError);
    expect(() => compose(properties)).toThrow(message);
  });

  it('nothing given and nothing kept: says what a new install needs', () => {
    expect(() => compose({})).toThrow(
      'no configuration: give COLLECTOR, FARM and TOKEN or TOKENFILE (or CONFIGFILE) on the msiexec command line',
    );
  });

  it('an upgrade with no properties keeps agent.yaml as it is, comments and all', () => {
    const existing = '# tuned by hand\ncollector: wss://c.example:8443\nfarm: f1\npollIntervalSeconds: 30\n';
    expect(compose({}, existing)).toEqual({ text: existing, origin: 'kept' });
  });

  it('properties on an upgrade update only their keys; comments, other keys and the spool stay', () => {
    const existing =
      '# tuned by hand\ncollector: wss://old.example\nfarm: f1\ntokenFile: C:\\ProgramData\\rasmon\\token\nspool:\n  dir: D:\\spool\npollIntervalSeconds: 30\n';
    const composed = compose({ collector: 'wss://new.example', token: 'rotated' }, existing);
    expect(composed.origin).toBe('kept+properties');
    expect(composed.token).toBe('rotated');
    expect(composed.text.startsWith('# tuned by hand\n')).toBe(true);
    expect(parse(composed.text)).toEqual({
      collector: 'wss://new.example',
      farm: 'f1',
      tokenFile: 'C:\\ProgramData\\rasmon\\token',
      spool: { dir: 'D:\\spool' },
      pollIntervalSeconds: 30,
    });
  });

  it('CONFIGFILE alone replaces the configuration with the file as written', () => {
    expect(compose({ configFile: 'C:\\share\\own.yaml' }, 'farm: old\n')).toEqual({
      text: files['C:\\share\\own.yaml'],
      origin: 'configfile',
    });
  });

  it('a data folder must be an absolute Windows path', () => {
    expect(() => dataPaths('rasmon')).toThrow('--data-dir must be an absolute path (rasmon)');
    expect(dataPaths('C:\\ProgramData\\rasmon\\').config).toBe('C:\\ProgramData\\rasmon\\agent.yaml');
  });
});
