/**
 * An outcome billed on an invoice with a retention discount (docs/pricing.md, "30 % off the next three periods")
 * was paid at the discounted price. Reversed after its period's close, it is credited on the next invoice at the
 * list price: more than the customer paid for it when the discount has ended by then.
 *
 * Timeline (2029), 1.00 a call, no flat fee, reversals accepted for 90 days:
 *   Jan 15  10 calls; Feb 1 invoice with a 30 % retention discount: 10.00 - 3.00 = 7.00, paid
 *   Feb 10  all 10 calls reversed; Mar 1 invoice (no discount any more): what the calls cost the customer, -7.00
 * Postgres only: the activities are called as the workflow calls them.
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rd_calls', name: 'Calls', event_type: 'rd.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' };
const february = { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' };
const march = { start: '2029-03-01T00:00:00.000Z', end: '2029-04-01T00:00:00.000Z' };

test('outcomes paid at a retention discount are credited at what they were paid, not at the list price', async () => {
  const customer = await insertCustomer(db, { external_id: 'discounted' });
  const plan = await insertPlan(db, {
    code: 'rd-calls',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'rd_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:discounted', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const close = (period: { start: string; end: string }) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }));
  await insertUsageEvents(db, Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `rd-${i}`, eventType: 'rd.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  await close(january);
  const invoicing = createInvoicingActivities(db);
  const billed = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january, discountPercentOff: '30' });
  expect(billed.total).toBe('7.00');
  await db('invoices').where({ id: billed.invoiceId }).update({ status: 'paid' }); // unpaid, the credit would be taken off it instead

  await insertReversalEvents(
    db,
    Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `rd-${i}-reversal`, eventType: 'rd.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `rd-${i}` })),
  );
  await close(february);
  const credited = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  expect(credited.total).toBe('-7.00');
});
