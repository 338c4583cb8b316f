/** Tests run TypeScript through swc (fast, no type-check: `npm run typecheck` does that). */
module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.tsx?$': '@swc/jest' },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  setupFiles: ['<rootDir>/test/support/quiet-temporal.ts'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  testTimeout: 120000,
  // One test file at a time (npm test passes --maxWorkers=1), in a worker process that is replaced once it holds
  // more than this after a file: a run in the main process kept every file's modules (workflow bundles, SDK
  // native handles) and ran out of its 4 GB heap after about 140 files.
  workerIdleMemoryLimit: '1536MB',
};
