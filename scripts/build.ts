/**
 * `npm run build`: what the image runs, in dist/.
 *   1. tsc -p tsconfig.build.json   product code compiled to CommonJS (dist/worker/main.js, dist/api/main.js, ...)
 *   2. the API's static files        api/usage-page/* beside the compiled router that serves them, and the
 *                                    worker's preload (worker/workflow-thread-preload.cjs) beside its main
 *   3. dist/workflow-bundle.js       the workflow bundle, made once from the compiled workflows, which a compiled
 *                                    worker loads instead of running webpack at every start (worker/workflow-bundle.ts)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const log = (message: string): void => console.log(`[build] ${message}`);

async function main(): Promise<void> {
  fs.rmSync(DIST, { recursive: true, force: true });
  log('tsc -p tsconfig.build.json');
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });

  fs.cpSync(path.join(ROOT, 'api', 'usage-page'), path.join(DIST, 'api', 'usage-page'), { recursive: true });
  log('copied api/usage-page');
  // Plain CommonJS that tsc does not compile: the worker's `node --require dist/worker/workflow-thread-preload.cjs`.
  fs.copyFileSync(path.join(ROOT, 'worker', 'workflow-thread-preload.cjs'), path.join(DIST, 'worker', 'workflow-thread-preload.cjs'));
  log('copied worker/workflow-thread-preload.cjs');

  // Bundled from dist/workflows (what the image ships), through the compiled module the worker itself uses.
  const compiled = (await import(pathToFileURL(path.join(DIST, 'worker', 'workflow-bundle.js')).href)) as typeof import('../worker/workflow-bundle');
  const started = Date.now();
  const bundle = await compiled.buildWorkflowBundle();
  const target = path.join(DIST, compiled.WORKFLOW_BUNDLE_FILE);
  fs.writeFileSync(target, bundle.code);
  log(`workflow bundle ${path.relative(ROOT, target)} (${Math.round(bundle.code.length / 1024)} KiB, ${Date.now() - started} ms)`);
}

main().catch((error: unknown) => {
  console.error('[build] failed:', error);
  process.exit(1);
});
