/**
 * A billing worker in its own process, for tests that kill it (SIGKILL) at random points and start it again.
 * Env: TEMPORAL_ADDRESS, DATABASE_URL, WORKFLOW_BUNDLE_PATH (a prebuilt bundle, so a restart is quick).
 */
import { NativeConnection } from '@temporalio/worker';
import { createDatabase } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';

async function main(): Promise<void> {
  const db = createDatabase(process.env.DATABASE_URL!);
  const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS! });
  const worker = await createBillingWorker({ connection, db, workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! } });
  process.stdout.write('worker running\n');
  await worker.run();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
