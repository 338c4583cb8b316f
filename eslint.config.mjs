// Lint rules that protect correctness and the shape of the code:
// - no floating promises anywhere (a lost promise is a lost write or an unhandled failure);
// - no Node built-ins in workflow, contract or domain code (workflows must stay deterministic);
// - the layer table of DESIGN.md: each folder imports only the folders below it, so a forbidden import
//   (the API calling an activity, a workflow importing the store, product code importing bench/) fails lint.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((name) => [name, `node:${name}`]);
const noNodeBuiltins = nodeBuiltins.map((name) => ({ name, message: 'Workflow, contract and domain code must be deterministic: no Node built-ins.' }));

/** A relative import that reaches one of our top-level folders, e.g. `../../activities/refunds`. */
const folderImport = (folders) => `^(\\.\\./)+(${folders.join('|')})(/|$)`;

/** Tooling folders that product code never imports. */
const TOOLING = ['bench', 'scripts', 'test'];

/**
 * The import table: folder -> what it must not import, with the reason shown on a violation.
 * Kept in step with the layout table of DESIGN.md.
 */
const LAYERS = [
  {
    folder: 'domain',
    builtins: true,
    // Pure: money, periods, rating. Nothing of ours outside domain/, and no package but decimal.js.
    patterns: [
      { regex: '^\\.\\./', message: 'domain/ is pure: it imports only other domain/ modules.' },
      { regex: '^(?!\\.|decimal\\.js$)', message: 'domain/ imports no package but decimal.js.' },
    ],
  },
  {
    folder: 'contract',
    builtins: true,
    patterns: [{ regex: folderImport(['activities', 'workflows', 'store', 'payments', 'notifications', 'api', 'worker', 'logging', 'tracing', ...TOOLING]), message: 'contract/ holds types shared by workflows and activities: it may import only domain/.' }],
  },
  {
    folder: 'workflows',
    builtins: true,
    patterns: [{ regex: folderImport(['activities', 'store', 'payments', 'notifications', 'api', 'worker', 'logging', 'tracing', 'config', ...TOOLING]), message: 'Workflows reach activities only through contract/ (import type); all I/O is in activities.' }],
  },
  {
    folder: 'activities',
    patterns: [{ regex: folderImport(['workflows', 'api', 'worker', ...TOOLING]), message: 'Activities import domain/, store/, payments/, notifications/ and contract/ only.' }],
  },
  {
    folder: 'store',
    patterns: [{ regex: folderImport(['activities', 'workflows', 'contract', 'payments', 'notifications', 'api', 'worker', 'logging', 'tracing', ...TOOLING]), message: 'store/ is the bottom layer above domain/: it imports only domain/ (and migrations/ to migrate).' }],
  },
  {
    folder: 'payments',
    patterns: [{ regex: folderImport(['activities', 'workflows', 'contract', 'notifications', 'api', 'worker', ...TOOLING]), message: 'payments/ imports domain/ and store/ only.' }],
  },
  {
    folder: 'notifications',
    patterns: [{ regex: folderImport(['activities', 'workflows', 'contract', 'api', 'worker', ...TOOLING]), message: 'notifications/ imports domain/, store/ and logging/ only.' }],
  },
  {
    folder: 'api',
    patterns: [
      { regex: folderImport(['activities', 'worker', ...TOOLING]), message: 'The API records facts and signals workflows: it never imports activities/, worker/, bench/ or scripts/.' },
      { regex: '^(\\.\\./)+workflows/(?!definitions$)', message: 'The API knows workflows only through workflows/definitions (signals, updates, queries, ids).' },
    ],
  },
  {
    folder: 'worker',
    patterns: [{ regex: folderImport(['api', ...TOOLING]), message: 'The worker wires activities and workflows; it does not import api/, bench/ or scripts/.' }],
  },
  {
    folder: 'logging',
    patterns: [{ regex: '^\\.\\./', message: 'logging/ is shared by every process and imports nothing of ours.' }],
  },
  {
    folder: 'tracing',
    patterns: [{ regex: '^\\.\\./', message: 'tracing/ is started first by every process and imports nothing of ours.' }],
  },
  {
    folder: 'config',
    // Process settings (Temporal connection, capacity knobs) that the worker, the API and the scripts share.
    patterns: [
      { regex: '^(\\.\\./)+(?!workflows/definitions$)', message: 'config/ reads process settings: of ours it imports only workflows/definitions (the task queue name).' },
    ],
  },
  {
    folder: 'migrations',
    patterns: [{ regex: '^\\.\\./', message: 'Migrations are self-contained: they import nothing of ours.' }],
  },
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.data/**', '.tmp/**', 'coverage/**', 'dist/**', '**/*.config.js', '**/*.config.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...LAYERS.map(({ folder, builtins, patterns }) => ({
    files: [`${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', { paths: builtins ? noNodeBuiltins : [], patterns }],
    },
  })),
  {
    files: ['workflows/**/*.ts', 'domain/**/*.ts', 'contract/**/*.ts'],
    rules: { '@typescript-eslint/consistent-type-imports': 'off' },
  },
  {
    // Plain CommonJS run by node itself (worker/workflow-thread-preload.cjs: preloaded before any loader exists).
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly', console: 'writable', globalThis: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
