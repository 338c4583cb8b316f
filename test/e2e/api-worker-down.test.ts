/**
 * Temporal up, no worker polling the billing task queue (a worker that crashed or is being deployed):
 *   - /readyz reports the missing pollers (200 with a warning by default; 503 with READINESS_REQUIRE_WORKER=true);
 *   - GET /v1/subscriptions/:id answers from Postgres within the query deadline (the query alone would wait for a
 *     worker), with `live: null, live_unavailable: "temporal_unavailable"`;
 *   - a plan change answers 503 temporal_unavailable within the call deadline instead of hanging.
 * Then a worker starts: /readyz sees its pollers and the live part comes back.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createApp } from '../../api/app';
import { RunningDevServer, startDevServer } from '../../scripts/temporal-servers';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { SEARCH_ATTRIBUTE_REGISTRATIONS } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { workflowBundle } from '../support/temporal';

const CALL_TIMEOUT_MS = 2_000;
const QUERY_TIMEOUT_MS = 1_500;
const saved = { call: process.env.TEMPORAL_CALL_TIMEOUT_MS, query: process.env.TEMPORAL_QUERY_TIMEOUT_MS };

let db: Database;
let devServer: RunningDevServer;
let connection: Connection;
let http: TestHttp;
let nativeConnection: NativeConnection | undefined;
let worker: Worker | undefined;
let workerRun: Promise<void> | undefined;
let subscriptionId: string;

beforeAll(async () => {
  process.env.TEMPORAL_CALL_TIMEOUT_MS = String(CALL_TIMEOUT_MS);
  process.env.TEMPORAL_QUERY_TIMEOUT_MS = String(QUERY_TIMEOUT_MS);
  [db, devServer] = await Promise.all([createTestDatabase(), startDevServer({ ui: false, searchAttributes: SEARCH_ATTRIBUTE_REGISTRATIONS, log: () => undefined })]);
  connection = await Connection.connect({ address: devServer.address });
  const admin = await createTestApiKey(db, 'admin');
  http = await serve(createApp({ db, temporal: new Client({ connection }), log: () => undefined, rateLimit: false }), { headers: admin.headers });
  const customer = await insertCustomer(db);
  await insertPlan(db, { code: 'nowork-basic', billing_interval: 'P1M', flat_fee: '10.00' });
  await insertPlan(db, { code: 'nowork-pro', billing_interval: 'P1M', flat_fee: '30.00' });
  const created = await http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: 'nowork-basic' }); // a start needs no worker
  expect(created.status).toBe(201);
  subscriptionId = created.json.id;
});

afterAll(async () => {
  for (const [name, value] of [['TEMPORAL_CALL_TIMEOUT_MS', saved.call], ['TEMPORAL_QUERY_TIMEOUT_MS', saved.query]] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  worker?.shutdown();
  await workerRun;
  await nativeConnection?.close();
  await http?.close();
  await connection?.close();
  await devServer?.stop();
  await db?.destroy();
});

test('no worker: /readyz reports no pollers on the billing task queue (a warning, or 503 when a worker is required)', async () => {
  const ready = await http.call('GET', '/readyz');
  expect(ready.status).toBe(200);
  expect(ready.json).toMatchObject({
    status: 'ready',
    checks: { postgres: { ok: true }, temporal: { ok: true }, worker: { ok: false, pollers: 0, error: expect.stringContaining('billing') } },
    warnings: [expect.stringContaining('worker')],
  });

  process.env.READINESS_REQUIRE_WORKER = 'true';
  try {
    const strict = await http.call('GET', '/readyz');
    expect(strict.status).toBe(503);
    expect(strict.json).toMatchObject({ code: 'not_ready', detail: 'not ready: worker' });
  } finally {
    delete process.env.READINESS_REQUIRE_WORKER;
  }
});

test('no worker: GET subscription answers from Postgres with the live part unavailable; a plan change is a quick 503', async () => {
  let started = Date.now();
  const read = await http.call('GET', `/v1/subscriptions/${subscriptionId}`);
  expect(Date.now() - started).toBeLessThan(QUERY_TIMEOUT_MS + 2_000);
  expect(read.status).toBe(200);
  expect(read.json).toMatchObject({ id: subscriptionId, plan: { code: 'nowork-basic' }, live: null, live_unavailable: 'temporal_unavailable' });

  started = Date.now();
  const change = await http.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'nowork-pro', effective: 'period_end' });
  expect(Date.now() - started).toBeLessThan(CALL_TIMEOUT_MS + 2_000);
  expect(change.status).toBe(503);
  expect(change.json).toMatchObject({ code: 'temporal_unavailable' });
  expect(change.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
});

test('a worker starts: /readyz sees its pollers and the live part is back', async () => {
  nativeConnection = await NativeConnection.connect({ address: devServer.address });
  worker = await createBillingWorker({ connection: nativeConnection, db, workflowBundle: await workflowBundle() });
  workerRun = worker.run();
  const ready = await eventually(async () => {
    const answer = await http.call('GET', '/readyz');
    return answer.json?.checks?.worker?.ok ? answer : undefined;
  }, 'a poller on the billing task queue');
  expect(ready.status).toBe(200);
  expect(ready.json.checks.worker).toMatchObject({ ok: true, pollers: expect.any(Number), last_poll_at: expect.any(String) });
  expect(ready.json.checks.worker.pollers).toBeGreaterThan(0);
  expect(ready.json.warnings).toBeUndefined();
  const live = await eventually(async () => {
    const read = await http.call('GET', `/v1/subscriptions/${subscriptionId}`);
    return read.json.live ? read : undefined;
  }, 'the live state');
  expect(live.json.live_unavailable).toBeUndefined();
});
