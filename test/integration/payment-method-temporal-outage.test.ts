/**
 * A new payment method while Temporal is unreachable: the token commits, and the signal to the customer's unpaid
 * subscriptions (the dunning hook) is bounded by the call deadline like every other Temporal call of the API, so
 * the request answers a quick 503 temporal_unavailable with Retry-After (its retry with the same Idempotency-Key
 * sends the signal: payment-method-retry-reaches-dunning.test.ts) instead of hanging through the client's retries.
 */
import { Client, Connection } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import { createApp } from '../../api/app';
import { freePort } from '../../store/free-port';
import type { Database } from '../../store/database';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

const CALL_TIMEOUT_MS = 1_500;
const saved = process.env.TEMPORAL_CALL_TIMEOUT_MS;

let db: Database;
let temporal: Client;
let http: TestHttp;

beforeAll(async () => {
  process.env.TEMPORAL_CALL_TIMEOUT_MS = String(CALL_TIMEOUT_MS);
  db = await createTestDatabase();
  temporal = new Client({ connection: Connection.lazy({ address: `127.0.0.1:${await freePort()}` }) }); // nothing listens
  const app = await createTestApiKey(db, 'app');
  http = await serve(createApp({ db, temporal, log: () => undefined, rateLimit: false }), { headers: app.headers });
});

afterAll(async () => {
  if (saved === undefined) delete process.env.TEMPORAL_CALL_TIMEOUT_MS;
  else process.env.TEMPORAL_CALL_TIMEOUT_MS = saved;
  await http?.close();
  await temporal?.connection.close();
  await db?.destroy();
});

test('the dunning signal of a new payment method answers 503 temporal_unavailable within the call deadline', async () => {
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const plan = await insertPlan(db, { code: 'pm-outage', billing_interval: 'P1M', flat_fee: '10.00' });
  const { row } = await insertSubscription(db, customer, plan, new Date(Date.now() - 3_600_000));
  await db('subscriptions').where({ id: row.id }).update({ status: 'suspended' });

  const started = Date.now();
  const answer = await http.call('POST', `/v1/customers/${customer.id}/payment-method`, { payment_method: 'pm_sandbox_ok' }, { 'idempotency-key': randomUUID() });
  const ms = Date.now() - started;
  expect(answer).toMatchObject({ status: 503, json: { code: 'temporal_unavailable' } });
  expect(answer.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
  expect(ms).toBeLessThan(CALL_TIMEOUT_MS + 2_000);
});
