/**
 * POST /v1/subscriptions retried with the same Idempotency-Key after its first attempt committed the row and could
 * not start the workflow (Temporal unreachable, so the row stays: api/workflow-start.ts). Only that repeat ever
 * starts the workflow. It must be judged against what the first attempt committed, not against the catalog or the
 * clock as they are by the time it arrives: refused, the row stays `scheduled` with no workflow and never bills.
 *
 *   attempt 1 ──503 (row committed, no workflow)──  [plan v2 published | the start slips a period behind]  ── repeat ──> 201, workflow running
 */
import type { Client } from '@temporalio/client';
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
let unreachable: TestHttp;
let working: TestHttp;

/** Temporal that neither starts a workflow nor can say whether one exists (down): the committed row stays. */
const temporalDown = {
  workflow: {
    start: () => Promise.reject(new Error('14 UNAVAILABLE: connection refused')),
    getHandle: () => ({ describe: () => Promise.reject(new Error('14 UNAVAILABLE: connection refused')) }),
  },
} as unknown as Client;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  app = await createTestApiKey(db, 'app');
  unreachable = await serve(createApp({ db, temporal: temporalDown, log: () => undefined }), { headers: app.headers });
  working = await serve(createApp({ db, temporal: env.client, log: () => undefined }), { headers: app.headers });
});

afterAll(async () => {
  await Promise.all([unreachable?.close(), working?.close()]);
  await Promise.all([env?.teardown(), db?.destroy()]);
});

async function firstAttemptLeavesTheRow(body: Record<string, unknown>, key: string): Promise<string> {
  const failed = await unreachable.call('POST', '/v1/subscriptions', body, { 'idempotency-key': key });
  expect(failed.status).toBe(503);
  const rows = await db('subscriptions').where({ customer_id: body.customer_id });
  expect(rows).toEqual([expect.objectContaining({ status: 'scheduled' })]);
  return rows[0].id as string;
}

test('a plan version published between the attempts: the repeat starts the subscription it created, on the version it chose', async () => {
  const customer = await insertCustomer(db);
  const v1 = await insertPlan(db, { code: 'repeat-catalog', billing_interval: 'P1M', flat_fee: '10.00' });
  const body = { customer_id: customer.id, plan_code: 'repeat-catalog' };
  const key = randomUUID();
  const id = await firstAttemptLeavesTheRow(body, key);

  await insertPlan(db, { code: 'repeat-catalog', version: 2, billing_interval: 'P1M', flat_fee: '12.00' });

  const repeated = await working.call('POST', '/v1/subscriptions', body, { 'idempotency-key': key });
  expect([repeated.status, repeated.json.code]).toEqual([201, undefined]);
  expect(repeated.json).toMatchObject({ id, plan: { code: 'repeat-catalog', version: 1 } });
  expect(await db('subscriptions').where({ customer_id: customer.id })).toEqual([expect.objectContaining({ id, plan_id: v1.id })]);
  expect((await env.client.workflow.getHandle(repeated.json.workflow_id).describe()).status.name).toBe('RUNNING');

  // The key still names only this request: another plan under it is refused, and nothing is written for it.
  const other = await working.call('POST', '/v1/subscriptions', { ...body, plan_version: 2 }, { 'idempotency-key': key });
  expect([other.status, other.json.code]).toEqual([409, 'idempotency_key_reused']);
  expect(await db('subscriptions').where({ customer_id: customer.id })).toHaveLength(1);
});

test('a start_at that fell a period behind while Temporal was down: the repeat still starts the subscription', async () => {
  const customer = await insertCustomer(db);
  await insertPlan(db, { code: 'repeat-clock', billing_interval: 'PT4S', flat_fee: '1.00' });
  // Two seconds ago: within the first four-second period, so the first attempt accepts it.
  const body = { customer_id: customer.id, plan_code: 'repeat-clock', start_at: new Date(Math.floor(Date.now() / 1000) * 1000 - 2000).toISOString() };
  const key = randomUUID();
  const id = await firstAttemptLeavesTheRow(body, key);

  await new Promise((resolve) => setTimeout(resolve, 2500)); // the first period has ended by the repeat

  const repeated = await working.call('POST', '/v1/subscriptions', body, { 'idempotency-key': key });
  expect([repeated.status, repeated.json.code]).toEqual([201, undefined]);
  expect(repeated.json.id).toBe(id);
  expect((await env.client.workflow.getHandle(repeated.json.workflow_id).describe()).status.name).toBe('RUNNING');

  // A new request (a new key) with that start is still refused.
  const fresh = await working.call('POST', '/v1/subscriptions', body, { 'idempotency-key': randomUUID() });
  expect([fresh.status, fresh.json.code]).toEqual([422, 'validation_failed']);
});
