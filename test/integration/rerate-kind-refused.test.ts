/**
 * A re-rating is of an invoice that billed a whole period (period, closing or proration). Asked for any other
 * invoice (a credit note, a threshold invoice, a re-rating's own adjustment) it is refused at once with 409
 * invoice_not_rerateable, nothing written and no workflow started. Before, the API answered 202, wrote the row and
 * started a workflow that then failed on its first step, leaving the re-rating `computing` for good.
 */
import type { Database } from '../../store/database';
import { createTestApiKey } from '../support/api-keys';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let finance: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  finance = (await createTestApiKey(db, 'finance')).headers;
  api = await serveApiOnly(db, { headers: finance });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test.each(['credit_note', 'threshold', 'adjustment'])('a %s invoice is not re-rated: 409, nothing written, no workflow', async (kind) => {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: `plan-${kind}`, billing_interval: 'P1M', flat_fee: '10.00' });
  const subscription = (await insertSubscription(db, customer, plan, new Date('2030-01-01T00:00:00Z'))).row;
  const base = { customer_id: customer.id, subscription_id: subscription.id, status: 'paid', currency: 'USD', period_start: new Date('2030-01-01T00:00:00Z'), period_end: new Date('2030-02-01T00:00:00Z') };
  const [period] = await db('invoices').insert({ ...base, kind: 'period', total: '10.00' }).returning('id');
  const shape: Record<string, Record<string, unknown>> = {
    credit_note: { credited_invoice_id: period.id, idempotency_key: `note-${period.id}` },
    threshold: { threshold_index: 1, threshold_amount: '4.00' },
    adjustment: {},
  };
  const [invoice] = await db('invoices').insert({ ...base, kind, total: '4.00', ...shape[kind] }).returning('id');

  const answer = await api.http.call('POST', `/v1/invoices/${invoice.id}/rerate`, { reason: 'check' });
  expect([answer.status, answer.json.code]).toEqual([409, 'invoice_not_rerateable']);
  expect(await db('rerates').where({ invoice_id: invoice.id })).toEqual([]);
  expect(api.temporalCalls).toEqual([]);
});
