/**
 * The prebuilt workflow bundle: `npm run build` writes it once (dist/workflow-bundle.js), so a compiled worker starts
 * without running webpack over workflows/ at every start. Running from TypeScript (`npm run worker`, `npm start`,
 * tests) there is no prebuilt bundle and the worker bundles from source, as before.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bundleWorkflowCode, type BundleOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { WORKFLOWS_PATH } from './create-worker';

export const WORKFLOW_BUNDLE_FILE = 'workflow-bundle.js';

/**
 * Builds the bundle the worker would build at start. Whatever the worker passes to webpack (workflowsPath, and
 * workflowInterceptorModules or payloadConverterPath if it ever gets them) must be passed here too: a prebuilt bundle
 * carries them, the worker cannot add them later.
 */
export function buildWorkflowBundle(options: Pick<BundleOptions, 'logger'> = {}): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, ...options });
}

/**
 * The bundle a compiled worker loads: WORKFLOW_BUNDLE_PATH when set (it must exist), else the file `npm run build`
 * writes beside the compiled code (dist/workflow-bundle.js, found from dist/worker/). Undefined when running from
 * TypeScript: a bundle left over in the checkout must never stand in for the workflows being edited.
 */
export function prebuiltWorkflowBundle(env: Record<string, string | undefined> = process.env): { codePath: string } | undefined {
  const explicit = env.WORKFLOW_BUNDLE_PATH?.trim();
  if (explicit) {
    if (!fs.existsSync(explicit)) throw new Error(`WORKFLOW_BUNDLE_PATH names ${explicit}, which does not exist (npm run build writes dist/${WORKFLOW_BUNDLE_FILE})`);
    return { codePath: path.resolve(explicit) };
  }
  if (!__filename.endsWith('.js')) return undefined;
  const besideBuild = path.join(__dirname, '..', WORKFLOW_BUNDLE_FILE);
  return fs.existsSync(besideBuild) ? { codePath: besideBuild } : undefined;
}
