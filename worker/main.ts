/**
 * The worker process on its own (docker-compose, production): `npm run worker`. Launched with the workflow threads'
 * preload (`node --require worker/workflow-thread-preload.cjs`, worker/launch.ts), as every launcher here does.
 * Needs DATABASE_URL, and Temporal's address unless it is 127.0.0.1:7233 (TEMPORAL_* variables or a TOML profile:
 * docs/operations.md, "Connecting to a Temporal cluster"). `npm start` runs the same worker in-process for local use.
 */
import { NativeConnection, Runtime } from '@temporalio/worker';
import { emailChannelFromEnv } from '../notifications/email';
import { startOutboxDispatcher } from '../notifications/outbox-dispatcher';
import { createLogger } from '../logging/logger';
import { startTracing } from '../tracing';
import { createDatabase } from '../store/database';
import { createBillingWorker } from './create-worker';
import { prebuiltWorkflowBundle } from './workflow-bundle';
import { temporalConnectionFromEnv } from '../config/temporal-connection';
import { connectOrExplain } from '../config/temporal-connect-diagnosis';
import { billingTaskQueue, databasePoolMax, workerTuningFromEnv, workflowStackTraces } from '../config/tuning';
import { ensureJanitorSchedule, janitorScheduleFromEnv } from './janitor-schedule';

const logger = createLogger('worker');

/**
 * The SDK's own metrics (task slots, poll and schedule-to-start latencies, activity and workflow task outcomes,
 * sticky cache) served for Prometheus at http://WORKER_METRICS_ADDRESS/metrics (default 127.0.0.1:9464; "off"
 * disables it). Must run before the first connection: the Runtime is created once per process.
 */
function installRuntimeTelemetry(): void {
  const bindAddress = process.env.WORKER_METRICS_ADDRESS ?? '127.0.0.1:9464';
  if (bindAddress === 'off') return;
  Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress, countersTotalSuffix: true } } } });
  logger.info({ url: `http://${bindAddress}/metrics` }, 'worker metrics for Prometheus');
}

async function main(): Promise<void> {
  // First: the pg instrumentation must be in place before the first connection (off without an OTLP endpoint).
  const tracing = startTracing({ serviceName: 'meterloop-worker' });
  installRuntimeTelemetry();
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required (npm start provides an embedded Postgres instead)');
  const db = createDatabase(databaseUrl, databasePoolMax());
  // TOML profile and TEMPORAL_* variables (config/temporal-connection.ts); plain 127.0.0.1:7233 when none is set.
  const temporal = temporalConnectionFromEnv();
  const namespace = temporal.namespace;
  const taskQueue = billingTaskQueue();
  const tuning = workerTuningFromEnv();
  const stackTraces = workflowStackTraces();
  // With tracing on, the workflows are bundled from source with the OpenTelemetry workflow interceptors (the
  // prebuilt bundle of dist/ has none).
  const workflowBundle = tracing.enabled ? undefined : prebuiltWorkflowBundle();
  logger.info({ temporal: temporal.summary, taskQueue, tuning, workflowStackTraces: stackTraces, workflowBundle: workflowBundle?.codePath ?? 'bundled from source' }, 'connecting to Temporal');
  const connection = await connectOrExplain(temporal, (options) => NativeConnection.connect(options));
  const worker = await createBillingWorker({ connection, db, namespace, taskQueue, tuning, workflowBundle, plugins: tracing.temporalPlugins });
  // The janitor's schedule (idempotent: every worker may ensure it). Billing runs without it, so a failure only logs.
  const janitor = janitorScheduleFromEnv();
  if (janitor.enabled) {
    await ensureJanitorSchedule({ connection, namespace, taskQueue, every: janitor.every }).then(
      (outcome) => logger.info({ outcome, every: janitor.every }, 'janitor schedule ensured'),
      (error: unknown) => logger.error({ err: error }, 'janitor schedule could not be ensured; the worker runs without it'),
    );
  }
  // Webhooks and email from the outbox, in this process (safe to run in every worker: claims skip locked rows).
  const dispatcher = process.env.METERLOOP_OUTBOX_DISPATCHER === 'off' ? null : startOutboxDispatcher({ db, email: emailChannelFromEnv(), logger: logger.child({ component: 'outbox' }) });
  // The dispatcher loop catches its own failures; a rejection that still escapes is a bug to log, not a reason to
  // drop every workflow and activity task in flight (Node's default exits the process).
  process.on('unhandledRejection', (reason: unknown) => logger.error({ err: reason }, 'unhandled rejection (a bug; the worker keeps running)'));
  // worker.run() resolves after SIGINT/SIGTERM once in-flight tasks finish (the SDK installs the handlers).
  await worker.run();
  await dispatcher?.stop();
  await connection.close();
  await db.destroy();
  await tracing.shutdown();
}

main().catch((error: unknown) => {
  logger.fatal({ err: error }, 'worker stopped on an error');
  process.exit(1);
});
