// A vitest reporter that writes what failed to the JSON file named by RASMON_FAILURES_FILE: `lines`,
// one per failed test and per suite or file whose own hooks failed (a failed beforeAll leaves its
// tests skipped, so a list of failed tests alone would name nothing), `files`, the test files they
// are in, `unhandled`, errors outside any test, and `complete`, whether the run ended of itself
// (not interrupted, not bailed) with every file run to its end. Used by scripts/test-at-clocks.mjs
// to repeat every clock's failures at the end of a long log and to run a failed file again.

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
  onTestRunEnd(testModules, unhandledErrors, reason) {
    const file = process.env.RASMON_FAILURES_FILE;
    if (!file) return;
    const lines = [];
    const files = [];
    for (const module of testModules) {
      const where = module.relativeModuleId;
      if (module.state() === 'failed') files.push(where);
      for (const error of module.errors()) lines.push(`${where}: ${oneLine(error)}`);
      for (const suite of module.children.allSuites()) {
        for (const error of suite.errors()) lines.push(`${where} > ${suite.fullName} (a hook): ${oneLine(error)}`);
      }
      for (const test of module.children.allTests('failed')) {
        lines.push(`${where} > ${test.fullName}: ${oneLine(test.result().errors?.[0])}`);
      }
    }
    for (const error of unhandledErrors) lines.push(`unhandled: ${oneLine(error)}`);
    const complete =
      reason !== 'interrupted' &&
      testModules.every((module) => ['passed', 'failed', 'skipped'].includes(module.state()));
    const report = { lines, files, unhandled: unhandledErrors.length, complete };
    return import('node:fs').then(({ writeFileSync }) => writeFileSync(file, JSON.stringify(report)));
  }
}
