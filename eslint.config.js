// ESLint over every TypeScript file (type-checked rules, through the tsconfig that builds or checks it)
// and the plain JavaScript: the status page (browser modules), the bins and the example (Node).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['**/node_modules/', '**/dist/', 'coverage/', '.tmp/'],
  },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // The first of these that includes a file types it: the packages' sources, then the tests (with
        // agent/build), then the bench.
        project: [
          './protocol/tsconfig.json',
          './collector/tsconfig.json',
          './agent/tsconfig.json',
          './demo/tsconfig.json',
          './test/tsconfig.json',
          './bench/tsconfig.json',
        ],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // Off: an `async` method without `await` is how a Promise-returning contract (a session source's
      // list(), a dispose()) is met so that a throw becomes a rejection; dropping `async` would change that.
      '@typescript-eslint/require-await': 'off',
      // ws types a message as Buffer | ArrayBuffer | Buffer[]; with the default binaryType ('nodebuffer',
      // never changed here) it is a Buffer, whose toString() is the text.
      '@typescript-eslint/no-base-to-string': [
        'error',
        { ignoredTypeNames: ['ArrayBuffer', 'Error', 'RegExp', 'URL', 'URLSearchParams'] },
      ],
    },
  },
  {
    // Tests read JSON off the wire (fetch().json(), JSON.parse, Redis replies) as `any` and check its shape
    // with expect(); typing every read would restate the schemas the tests exist to check.
    files: ['test/**/*.ts', '*/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  // The agent's layering (agent/src/README.md): a folder imports only itself and the layers below it,
  // never its parent folder.
  agentLayer('agent/src/session/**/*.ts', [], 'session/ is the bottom layer'),
  agentLayer('agent/src/{link,simulator,command}/**/*.ts', ['session'], 'this layer sits on session/ alone'),
  agentLayer('agent/src/windows/**/*.ts', ['session', 'command'], 'windows/ sits on session/ and command/'),
  // The collector's layering (collector/src/README.md), likewise.
  collectorLayer('config', [], 'config/ is the bottom layer'),
  collectorLayer('engine', ['config'], 'engine/ sits on config/ alone'),
  collectorLayer('broker', ['config'], 'broker/ sits on config/ alone'),
  collectorLayer('metrics', ['config', 'engine', 'broker'], 'metrics/ sits on config/, engine/ and broker/'),
  collectorLayer('report', ['config', 'engine'], 'report/ sits on config/ and engine/'),
  collectorLayer(
    'ingest',
    ['config', 'engine', 'broker', 'metrics'],
    'ingest/ sits on config/, engine/, broker/ and metrics/',
  ),
  collectorLayer('api', ['config', 'engine', 'broker', 'report'], 'api/ sits on config/, engine/, broker/ and report/'),
  {
    // Root tool configs belong to no tsconfig: linted without type information.
    files: ['*.config.ts'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { parserOptions: { project: false, projectService: false } },
  },
  {
    files: ['collector/static/**/*.js'],
    languageOptions: { sourceType: 'module', globals: globals.browser },
  },
  {
    files: ['**/bin/*.js', 'examples/**/*.mjs', 'scripts/**/*.mjs', 'eslint.config.js'],
    languageOptions: { sourceType: 'module', globals: globals.node },
  },
);

/** Forbids imports out of a folder of agent/src except into the named folders below it. */
function agentLayer(files, below, message) {
  return layer([files], below, `${message} (agent/src/README.md)`);
}

/** Forbids imports out of collector/src/`folder` except into the named folders below it. */
function collectorLayer(folder, below, message) {
  return layer([`collector/src/${folder}/**/*.ts`], below, `${message} (collector/src/README.md)`);
}

/** `../x` out of `files` is refused unless x is one of the folders `below`. */
function layer(files, below, message) {
  const allowed = below.length ? `(?!(${below.join('|')})/)` : '';
  const pattern = { regex: `^\\.\\./${allowed}`, message };
  return { files, rules: { 'no-restricted-imports': ['error', { patterns: [pattern] }] } };
}
