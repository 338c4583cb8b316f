/**
 * A re-rating request naming a plan version no plan can have (past what the version column holds) is refused as
 * plan_not_found, as any other unknown version is: it was a 500 (Postgres refused the comparison), and nothing
 * may be written or started.
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  await db('billable_metrics').insert({ code: 'pv_calls', name: 'Calls', event_type: 'pv.call', aggregation: 'count' });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test.each([2147483648, 9007199254740991])('plan_version %d: 404 plan_not_found, nothing written', async (version) => {
  const name = `pv-${version}`;
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: name, billing_interval: 'P1M', flat_fee: '10.00', charges: [{ metricCode: 'pv_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date('2029-01-01T00:00:00Z'), current_period_start: new Date('2029-01-01T00:00:00Z'), current_period_end: new Date('2029-02-01T00:00:00Z') })
    .returning('*');
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: `${name}-1`, eventType: 'pv.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} }]);
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date('2029-01-01T00:00:00Z'), periodEnd: new Date('2029-02-01T00:00:00Z'), planId: plan.id, charges: plan.charges as never }));
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({
    subscriptionId: subscription.id,
    kind: 'period',
    flatFeePeriod: { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' },
    usagePeriod: { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' },
  });
  const response = await api.http.call('POST', `/v1/invoices/${invoice.invoiceId}/rerate`, { reason: 'price fix', plan_code: name, plan_version: version });
  expect({ status: response.status, type: response.type, code: response.json?.code }).toEqual({ status: 404, type: expect.stringContaining('application/problem+json'), code: 'plan_not_found' });
  expect(await db('rerates').where({ invoice_id: invoice.invoiceId })).toEqual([]);
  expect(api.temporalCalls).toEqual([]);
});
