'use strict';
/**
 * Preloaded into the worker process (`node --require ./worker/workflow-thread-preload.cjs ...`, the launch
 * arguments of worker/launch.ts). Node runs a preloaded module in every worker thread too, and this one acts only
 * in threads other than the main one: in a worker process, the SDK's workflow threads (nothing else that may run
 * in a thread here, such as a log transport, uses V8's promise hook API).
 *
 * What it does: unless WORKFLOW_STACK_TRACES=on, it hides V8's promise hook API from those threads, so the SDK
 * runs workflows without collecting their stack traces. The SDK treats that collection as optional (it runs
 * without it where the API is missing, as in Bun); the `__stack_trace` query, Temporal UI's "Stack Trace" tab, then
 * answers "Workflow stack traces are not enabled on this worker". Everything else is unchanged: workflow code,
 * history, replay, and the source-mapped stack of a workflow task failure.
 *
 * Why: to answer that query the SDK records a stack trace, source-mapped, for every promise a workflow creates, in
 * every activation (related upstream: sdk-typescript issue 1587, async workflow code far slower than sync). On
 * billing.run.1k that was 6-12 % of the worker's CPU per period, on the workflow thread, the one thread every
 * workflow task of the worker goes through: with it off the burst ran at 0.52-0.54 of its direct-database floor,
 * with it on 0.40-0.47, alternating (docs/benchmarks.md, "Workflow stack traces off").
 * A billing workflow waits at known points, which its details in the UI, its `subscriptionState` query and its
 * search attributes show, so the tab is a developer's tool: WORKFLOW_STACK_TRACES=on brings it back on a worker
 * being debugged (docs/operations.md, "Tuning").
 *
 * It leans on one thing the SDK does (1.24): it calls `v8.promiseHooks.createHook` once per workflow thread and
 * carries on without stack traces when that throws. An SDK that stopped doing so would fail its workflow threads
 * at start, and test/e2e/workflow-stack-traces.test.ts (like every worker-process test) with them; an SDK with an
 * option of its own to turn the collection off would make this file unnecessary.
 *
 * Plain CommonJS, not TypeScript: a preload runs in each new thread before any loader (tsx) is registered there.
 */
const { isMainThread } = require('node:worker_threads');
const v8 = require('node:v8');

if (isMainThread) {
  // For the worker's start-up log line (config/tuning.ts workflowStackTraces): the preload is in place.
  globalThis[Symbol.for('meterloop.workflowThreadPreload')] = true;
} else if (process.env.WORKFLOW_STACK_TRACES !== 'on') {
  const hidden = () => {
    // The SDK answers this throw with a console warning that the API "is not available", once per thread: wrong
    // about why, and noise in `npm start`'s short log. The worker's start-up log says what applies instead
    // (`workflowStackTraces`), so that one warning is dropped; the next console.warn call passes untouched.
    const warn = console.warn;
    console.warn = (...args) => {
      console.warn = warn;
      if (!String(args[0]).startsWith('v8.promiseHooks.createHook is not available')) warn(...args);
    };
    throw new Error('promise hooks are turned off in workflow threads (WORKFLOW_STACK_TRACES is not "on"; worker/workflow-thread-preload.cjs)');
  };
  // A copy with createHook replaced: Node's own promiseHooks object stays as it was.
  Object.defineProperty(v8, 'promiseHooks', { value: { ...v8.promiseHooks, createHook: hidden }, enumerable: true, configurable: true, writable: true });
}
