/**
 * POST /v1/customers/:id/payment-method: the new token is stored with an audit record and an event, and the
 * dunning hook hears of it (the API wires the hook to signal past-due subscription workflows).
 */
import { randomUUID } from 'node:crypto';
import type { PaymentMethodChange } from '../../api/routes/payment-methods';
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
const changes: PaymentMethodChange[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, {
    headers: (await createTestApiKey(db, 'app')).headers,
    onPaymentMethodUpdated: async (change) => {
      changes.push(change);
    },
  });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('a new payment method is stored, audited, announced, and handed to the dunning hook', async () => {
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_expired' });
  const response = await api.http.call('POST', `/v1/customers/${customer.id}/payment-method`, { payment_method: 'pm_sandbox_ok' });
  expect(response.status).toBe(200);
  expect(response.json).toMatchObject({ id: customer.id, payment_method: 'pm_sandbox_ok' });
  expect(await db('customers').where({ id: customer.id }).first()).toMatchObject({ payment_method: 'pm_sandbox_ok' });
  expect(await db('audit_log').where({ subject_id: customer.id, action: 'customer.payment_method_updated' })).toEqual([
    expect.objectContaining({ actor: 'api', details: { paymentMethod: 'pm_sandbox_ok', previousPaymentMethod: 'pm_sandbox_expired' } }),
  ]);
  expect(await db('outbox').where({ aggregate_id: customer.id, event_type: 'customer.payment_method_updated' })).toHaveLength(1);
  expect(changes).toEqual([{ customerId: customer.id, paymentMethod: 'pm_sandbox_ok', previousPaymentMethod: 'pm_sandbox_expired' }]);

  // The same token again changes nothing: no audit record, no event, no dunning retry.
  const again = await api.http.call('POST', `/v1/customers/${customer.id}/payment-method`, { payment_method: 'pm_sandbox_ok' }, { 'idempotency-key': randomUUID() });
  expect(again.status).toBe(200);
  expect(changes).toHaveLength(1);
  expect(await db('outbox').where({ aggregate_id: customer.id, event_type: 'customer.payment_method_updated' })).toHaveLength(1);
});

test('bad requests are rejected with problem+json and write nothing', async () => {
  const customer = await insertCustomer(db, { payment_method: 'pm_sandbox_ok' });
  for (const body of [{}, { payment_method: '' }, { payment_method: 42 }, { payment_method: 'pm_x', extra: 1 }]) {
    const response = await api.http.call('POST', `/v1/customers/${customer.id}/payment-method`, body);
    expect([response.status, response.json.code]).toEqual([422, 'validation_failed']);
  }
  const missing = await api.http.call('POST', `/v1/customers/${randomUUID()}/payment-method`, { payment_method: 'pm_sandbox_ok' });
  expect([missing.status, missing.json.code]).toEqual([404, 'customer_not_found']);
  expect(await db('customers').where({ id: customer.id }).first()).toMatchObject({ payment_method: 'pm_sandbox_ok' });
  expect(await db('audit_log').where({ subject_id: customer.id })).toHaveLength(0);
});
