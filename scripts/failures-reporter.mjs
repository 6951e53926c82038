// A vitest reporter that writes what failed, one line each, to the JSON file named by
// RASMON_FAILURES_FILE: failed tests, and the suites and files whose own hooks failed (a failed
// beforeAll leaves its tests skipped, so a list of failed tests alone would name nothing). Used by
// scripts/test-at-clocks.mjs to repeat every clock's failures at the end of a long log.

/**
 * An error's message without its stack, on one line: its cause is often past its first line (a
 * process's output given as the assertion's message).
 */
function oneLine(error) {
  return String(error?.message ?? error ?? '')
    .split('\n')
    .filter((line) => line.trim() !== '' && !/^\s+at /.test(line))
    .join(' | ')
    .slice(0, 600);
}

export default class FailuresReporter {
  onTestRunEnd(testModules, unhandledErrors) {
    const file = process.env.RASMON_FAILURES_FILE;
    if (!file) return;
    const lines = [];
    for (const module of testModules) {
      const where = module.relativeModuleId;
      for (const error of module.errors()) lines.push(`${where}: ${oneLine(error)}`);
      for (const suite of module.children.allSuites()) {
        for (const error of suite.errors()) lines.push(`${where} > ${suite.fullName} (a hook): ${oneLine(error)}`);
      }
      for (const test of module.children.allTests('failed')) {
        lines.push(`${where} > ${test.fullName}: ${oneLine(test.result().errors?.[0])}`);
      }
    }
    for (const error of unhandledErrors) lines.push(`unhandled: ${oneLine(error)}`);
    return import('node:fs').then(({ writeFileSync }) => writeFileSync(file, JSON.stringify(lines)));
  }
}
