/**
 * A subscription's workflow starts only once its row has committed, on a real (time-skipping) Temporal server and
 * a real Postgres. Found by the lifecycle simulation: started inside the insert's transaction, the workflow's first
 * invoice (a local activity, milliseconds later) sometimes ran before the commit, found no subscription, and the
 * subscription never billed (about one in a hundred scenarios).
 */
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { randomUUID } from 'node:crypto';
import { createApp } from '../../api/app';
import type { Database } from '../../store/database';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment } from '../support/temporal';

let env: TestWorkflowEnvironment;
let db: Database;
let app: TestApiKey;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  app = await createTestApiKey(db, 'app');
});

afterAll(async () => {
  await Promise.all([env?.teardown(), db?.destroy()]);
});

/** The API over a real client whose workflow starts pass through `onStart` first. */
async function apiWith(onStart: (workflowId: string) => Promise<void>): Promise<TestHttp> {
  const temporal = new Client({ connection: env.connection });
  const start = temporal.workflow.start.bind(temporal.workflow);
  temporal.workflow.start = (async (workflowType: string, options: { workflowId: string }) => {
    await onStart(options.workflowId);
    return start(workflowType, options as never);
  }) as typeof temporal.workflow.start;
  return serve(createApp({ db, temporal, log: () => undefined }), { headers: app.headers });
}

async function subscriptionBody(code: string) {
  const customer = await insertCustomer(db);
  await insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '10.00' });
  return { customer_id: customer.id, plan_code: code };
}

test('the row is committed when the workflow starts, so its first steps find it', async () => {
  const seenAtStart: boolean[] = [];
  // `db` is a pool: this read runs on another connection, which sees the row only once it is committed.
  const api = await apiWith(async (workflowId) => {
    seenAtStart.push((await db('subscriptions').where({ workflow_id: workflowId }).first()) !== undefined);
  });
  try {
    const created = await api.call('POST', '/v1/subscriptions', await subscriptionBody('start-order'));
    expect(created.status).toBe(201);
    expect(seenAtStart).toEqual([true]);
    expect((await env.client.workflow.getHandle(created.json.workflow_id).describe()).status.name).toBe('RUNNING');
  } finally {
    await api.close();
  }
});

test('a start that failed after the commit is completed by the repeat with the same Idempotency-Key, once', async () => {
  const failing = await apiWith(async () => {
    throw new Error('connection reset while starting');
  });
  const working = await apiWith(async () => undefined);
  try {
    const body = await subscriptionBody('start-repeat');
    const key = randomUUID();
    const failed = await failing.call('POST', '/v1/subscriptions', body, { 'idempotency-key': key });
    expect(failed).toMatchObject({ status: 503, json: { code: 'workflow_unavailable' } });
    // Temporal could answer that no workflow exists: the unstarted row is gone, nothing is left half made.
    expect(await db('subscriptions').where({ customer_id: body.customer_id })).toHaveLength(0);

    const repeated = await working.call('POST', '/v1/subscriptions', body, { 'idempotency-key': key });
    expect(repeated.status).toBe(201);
    const again = await working.call('POST', '/v1/subscriptions', body, { 'idempotency-key': key });
    expect(again.json.id).toBe(repeated.json.id);
    expect(await db('subscriptions').where({ customer_id: body.customer_id })).toHaveLength(1);
    // The workflow id is never reused, not even by a repeat after it started.
    await expect(
      env.client.workflow.start('subscriptionWorkflow', { workflowId: repeated.json.workflow_id, taskQueue: 'nowhere', args: [] }),
    ).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);
  } finally {
    await Promise.all([failing.close(), working.close()]);
  }
});
