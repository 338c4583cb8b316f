/**
 * POST /v1/customers with a payment method pasted with spaces around it. POST /v1/customers/:id/payment-method
 * trims the token (and refuses a blank one), but the create stored it as sent: "  pm_sandbox_ok " is no token the
 * gateway knows, so every charge of the customer's invoices is declined as unknown_payment_method (not retryable)
 * and dunning gives the subscription up, with the customer's real card "on file". A blank token ("   ") was
 * stored too. Now the create reads the token as the update does. API and a real Postgres, no Temporal.
 */
import { SandboxGateway } from '../../payments/sandbox-gateway';
import Decimal from 'decimal.js';
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('a payment method with spaces around it is stored as the token, and that token charges', async () => {
  const created = await api.http.call('POST', '/v1/customers', { external_id: 'padded', name: 'Padded', currency: 'USD', payment_method: '  pm_sandbox_ok \n' });
  expect(created.status).toBe(201);
  const stored = (await db('customers').where({ external_id: 'padded' }).first()).payment_method as string;
  const charge = await new SandboxGateway(db).charge({ idempotencyKey: 'payment:padded:1', paymentMethod: stored, amount: new Decimal('20.00'), currency: 'USD', reference: 'padded' });
  // Before: { response: '  pm_sandbox_ok \n', stored: '  pm_sandbox_ok \n', charge: 'declined' } (unknown_payment_method).
  expect({ response: created.json.payment_method, stored, charge: charge.outcome }).toEqual({ response: 'pm_sandbox_ok', stored: 'pm_sandbox_ok', charge: 'succeeded' });
});

test('a blank payment method is refused with a problem, and no customer is written', async () => {
  const refused = await api.http.call('POST', '/v1/customers', { external_id: 'blank', name: 'Blank', currency: 'USD', payment_method: '   ' });
  // Before: 201, and a customer whose token is three spaces.
  expect({ status: refused.status, type: refused.type, code: refused.json?.code, path: refused.json?.errors?.[0]?.path }).toEqual({
    status: 422,
    type: 'application/problem+json; charset=utf-8',
    code: 'validation_failed',
    path: 'payment_method',
  });
  expect(await db('customers').where({ external_id: 'blank' }).first()).toBeUndefined();
});
