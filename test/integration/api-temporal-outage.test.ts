/**
 * Temporal unreachable (the API's client points at a closed port): requests that need a workflow answer a quick
 * 503 temporal_unavailable with Retry-After instead of a 500 after the client's ~20 s of retries, and
 * GET /v1/subscriptions/:id answers 200 from Postgres with the live part marked unavailable.
 * (A running Temporal with no worker, where the query would hang: test/e2e/api-worker-down.test.ts.)
 */
import { Client, Connection } from '@temporalio/client';
import { createApp } from '../../api/app';
import { freePort } from '../../store/free-port';
import type { Database } from '../../store/database';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

const CALL_TIMEOUT_MS = 1_500;
const QUERY_TIMEOUT_MS = 1_000;
const saved = { call: process.env.TEMPORAL_CALL_TIMEOUT_MS, query: process.env.TEMPORAL_QUERY_TIMEOUT_MS };

let db: Database;
let temporal: Client;
let http: TestHttp;
let subscriptionId: string;

beforeAll(async () => {
  process.env.TEMPORAL_CALL_TIMEOUT_MS = String(CALL_TIMEOUT_MS);
  process.env.TEMPORAL_QUERY_TIMEOUT_MS = String(QUERY_TIMEOUT_MS);
  db = await createTestDatabase();
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: 'outage-basic', billing_interval: 'P1M', flat_fee: '10.00' });
  await insertPlan(db, { code: 'outage-pro', billing_interval: 'P1M', flat_fee: '30.00' });
  const { row } = await insertSubscription(db, customer, plan, new Date(Date.now() - 3_600_000));
  await db('subscriptions').where({ id: row.id }).update({ status: 'active' });
  subscriptionId = row.id;
  temporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await freePort()}` }) }); // nothing listens
  const admin = await createTestApiKey(db, 'admin');
  http = await serve(createApp({ db, temporal, log: () => undefined, rateLimit: false }), { headers: admin.headers });
});

afterAll(async () => {
  process.env.TEMPORAL_CALL_TIMEOUT_MS = saved.call;
  process.env.TEMPORAL_QUERY_TIMEOUT_MS = saved.query;
  if (saved.call === undefined) delete process.env.TEMPORAL_CALL_TIMEOUT_MS;
  if (saved.query === undefined) delete process.env.TEMPORAL_QUERY_TIMEOUT_MS;
  await http?.close();
  await temporal?.connection.close();
  await db?.destroy();
});

async function timed(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ ms: number } & Awaited<ReturnType<TestHttp['call']>>> {
  const started = Date.now();
  const answer = await http.call(method, path, body, headers);
  return { ...answer, ms: Date.now() - started };
}

test('plan change, pause and cancel answer 503 temporal_unavailable with Retry-After within the call deadline', async () => {
  const requests = [
    timed('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'outage-pro', effective: 'immediate' }, { 'idempotency-key': 'outage-change-1' }),
    timed('POST', `/v1/subscriptions/${subscriptionId}/pause`, {}),
    timed('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'moving to another provider' }),
  ];
  for (const answer of await Promise.all(requests)) {
    expect(answer.status).toBe(503);
    expect(answer.type).toContain('application/problem+json');
    expect(answer.json).toMatchObject({ code: 'temporal_unavailable', status: 503 });
    expect(answer.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
    expect(answer.ms).toBeLessThan(CALL_TIMEOUT_MS + 2_000);
  }
  // Nothing was stored for the refused requests: the Idempotency-Key is given back to a retry of the same request.
  expect(await db('idempotency_keys').select('completed_at', 'released_at')).toEqual([{ completed_at: null, released_at: expect.any(Date) }]);
});

test('GET /v1/subscriptions/:id answers 200 from Postgres with the live part marked unavailable', async () => {
  const answer = await timed('GET', `/v1/subscriptions/${subscriptionId}`);
  expect(answer.status).toBe(200);
  expect(answer.json).toMatchObject({ id: subscriptionId, status: 'active', live: null, live_unavailable: 'temporal_unavailable' });
  expect(answer.ms).toBeLessThan(QUERY_TIMEOUT_MS + 2_000);
});
