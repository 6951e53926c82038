/** Builds the configured session source. */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { Classifier } from './windows/classify.js';
import type { AgentConfig } from './config.js';
import { AgentConfigError, inConfigFile } from './config.js';
import { CommandSource } from './command/command-source.js';
import { QuserSource } from './windows/quser-source.js';
import { SessionSimulator } from './simulator/simulate.js';
import type { SessionSource } from './session/source.js';
import { WtsSource } from './windows/wts-source.js';

/** `inputFile`: read a saved output instead of running the source's command (support cases, tests). */
export function createSource(config: AgentConfig, log: Logger, inputFile?: string): SessionSource {
  const classifier = new Classifier({ ...config.classify, ...(config.domain ? { domain: config.domain } : {}) });
  switch (config.source) {
    case 'wts':
      return new WtsSource({
        classifier,
        adminGroups: config.classify.adminGroups,
        log: log.child({ module: 'wts' }),
        ...(inputFile ? { inputFile } : {}),
      });
    case 'quser':
      return new QuserSource(
        classifier,
        config.quser.dateOrder ? { dateOrder: config.quser.dateOrder } : {},
        inputFile,
      );
    case 'command':
      if (!config.command && !inputFile)
        throw new AgentConfigError(inConfigFile(config, 'command: required by source "command"'));
      return new CommandSource(config.command, log, inputFile);
    case 'simulate': {
      if (inputFile) throw new AgentConfigError('--input: the simulate source reads no saved output');
      const sim = config.simulate;
      const domain = config.domain ?? 'SIM';
      const users = Array.from(
        { length: sim.users },
        (_, i) => `${domain}\\${sim.userPrefix}${String(i + 1).padStart(3, '0')}`,
      );
      const admins = Array.from({ length: sim.admins }, (_, i) => `${domain}\\admin${String(i + 1).padStart(2, '0')}`);
      return new SessionSimulator({
        seed: sim.seed ?? createHash('sha256').update(config.host).digest().readUInt32BE(0),
        host: config.host,
        users: [...users, ...admins],
        admins,
        startMs: Date.now(),
        ...(sim.targetSessions === undefined ? {} : { targetSessions: sim.targetSessions }),
        ...(sim.logonsPerMinute === undefined ? {} : { logonsPerMinute: sim.logonsPerMinute }),
      });
    }
  }
}
