/**
 * POST /v1/customers/:id/payment-method commits the new token, then tells the customer's unpaid subscriptions to
 * retry at once (the dunning hook signals their workflows). A suspended subscription waits for nothing else. When
 * that signal fails (Temporal down) the request answers 5xx and its Idempotency-Key is given back; the client's
 * retry with the same key finds the token already on file. It must still call the hook, or the retry answers 200
 * and the suspended subscription is never charged again.
 */
import { randomUUID } from 'node:crypto';
import type { PaymentMethodChange } from '../../api/routes/payment-methods';
import { ApiProblem } from '../../api/problem';
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
/** Calls of the hook that got through; `failNext` makes the next call fail as an unreachable Temporal does. */
const delivered: PaymentMethodChange[] = [];
let failNext = false;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, {
    headers: (await createTestApiKey(db, 'app')).headers,
    onPaymentMethodUpdated: async (change) => {
      if (failNext) {
        failNext = false;
        throw new ApiProblem('temporal_unavailable', 'Temporal did not answer');
      }
      delivered.push(change);
    },
  });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('the retry of a request whose dunning signal failed sends it, once; a new request with the same token does not', async () => {
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_declined' });
  const path = `/v1/customers/${customer.id}/payment-method`;
  const body = { payment_method: 'pm_sandbox_ok' };
  const key = randomUUID();

  failNext = true;
  const failed = await api.http.call('POST', path, body, { 'idempotency-key': key });
  expect([failed.status, failed.json.code]).toEqual([503, 'temporal_unavailable']);
  expect(await db('customers').where({ id: customer.id }).first()).toMatchObject({ payment_method: 'pm_sandbox_ok' }); // committed
  expect(delivered).toEqual([]);

  const retried = await api.http.call('POST', path, body, { 'idempotency-key': key });
  expect(retried.status).toBe(200);
  expect(delivered).toEqual([expect.objectContaining({ customerId: customer.id, paymentMethod: 'pm_sandbox_ok' })]);
  // Still one change on record: the retry completes the first request, it is not a second change.
  expect(await db('outbox').where({ aggregate_id: customer.id, event_type: 'customer.payment_method_updated' })).toHaveLength(1);

  // Its answer is now stored: a further repeat replays it without calling the hook again.
  const replayed = await api.http.call('POST', path, body, { 'idempotency-key': key });
  expect([replayed.status, replayed.headers.get('idempotent-replayed')]).toEqual([200, 'true']);
  // A new request posting the token already on file changes nothing and retries nothing.
  expect((await api.http.call('POST', path, body, { 'idempotency-key': randomUUID() })).status).toBe(200);
  expect(delivered).toHaveLength(1);
});
