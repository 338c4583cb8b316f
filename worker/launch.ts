/**
 * How a worker process is launched: node with the workflow threads' preload (worker/workflow-thread-preload.cjs),
 * for the launchers written in TypeScript (the bench's worker, the tests' worker processes). package.json's
 * `worker` and `start` scripts, the Dockerfile and docker-compose.yml spell the same arguments out.
 */
import * as path from 'node:path';

/** Beside this module in the checkout, and in dist/worker/ where `npm run build` copies it. */
export const WORKFLOW_THREAD_PRELOAD = path.join(__dirname, 'workflow-thread-preload.cjs');

/** Node arguments that go before the worker's entry module. */
export const WORKER_NODE_ARGS: readonly string[] = ['--require', WORKFLOW_THREAD_PRELOAD];
