/**
 * A re-rating of a period whose invoice had a retention discount compares list prices with list prices
 * (activities/rerating.ts alreadyInvoiced reads the usage lines, not the discount line): a corrected price credits
 * the list difference, more than the customer paid for the difference.
 *
 * Timeline (2029), 20.00 a month, 1.00 a call, corrected to 0.50:
 *   Jan 15  10 calls; Feb 1 invoice with 30 % off: 20.00 + 10.00 - 9.00 = 21.00 (the calls cost 7.00), paid
 *   re-rated at 0.50: the calls cost 5.00 at list, 3.50 after the discount: 3.50 back, not 5.00
 *   re-rated again at 0.50: nothing to do (the correction counts at its list amount)
 * Postgres only.
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rdp_calls', name: 'Calls', event_type: 'rdp.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' };
const february = { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' };
const callsAt = (unitPrice: string) => [{ metricCode: 'rdp_calls', price: { model: 'per_unit', unitPrice } }] as never;

test('a corrected price credits the difference at the discount the period was billed at', async () => {
  const customer = await insertCustomer(db, { external_id: 'rerated-discounted' });
  const plan = await insertPlan(db, { code: 'rdp', billing_interval: 'P1M', flat_fee: '20.00', charges: callsAt('1.00') });
  const cheaper = await insertPlan(db, { code: 'rdp', version: 2, billing_interval: 'P1M', flat_fee: '20.00', charges: callsAt('0.50') });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:rerated-discounted', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `rdp-${i}`, eventType: 'rdp.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: plan.id, charges: plan.charges as never }));
  const billed = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january, discountPercentOff: '30' });
  expect(billed.total).toBe('21.00');
  await db('payments').insert({ invoice_id: billed.invoiceId, attempt: 1, status: 'succeeded', amount: '21.00', currency: 'USD', idempotency_key: `payment:${billed.invoiceId}:1`, gateway_charge_id: 'ch_rdp' });
  await db('invoices').where({ id: billed.invoiceId }).update({ status: 'paid' });

  const id = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id, invoiceId: billed.invoiceId, subscriptionId: subscription.id, customerId: customer.id, requestedBy: 'finance', reason: 'price', correctedPlanId: cheaper.id, includeLateUsage: false }),
  );
  const activities = createReratingActivities(db);
  expect(await activities.proposeRerate({ rerateId: id })).toMatchObject({ status: 'proposed', outcome: 'credit', total: '-3.50' });
  await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
  expect(await activities.finalizeRerate({ rerateId: id })).toMatchObject({ status: 'finalized' });
  expect((await db('invoices').where({ credited_invoice_id: billed.invoiceId }).pluck('total')).map((total) => Number(total).toFixed(2))).toEqual(['3.50']);

  const again = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id: again, invoiceId: billed.invoiceId, subscriptionId: subscription.id, customerId: customer.id, requestedBy: 'finance', reason: 'again', correctedPlanId: cheaper.id, includeLateUsage: false }),
  );
  expect(await activities.proposeRerate({ rerateId: again })).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});

test('late calls of a discounted period are billed at its discount, and credited at it when reversed', async () => {
  // Feb 1 invoice 30 % off (10 calls). Feb 3: 2 late January calls, billed by a re-rating: 2.00 at list, 1.40.
  // Feb 10: one of them reversed: the Mar 1 invoice credits 0.70. A re-rating then finds nothing to do.
  const customer = await insertCustomer(db, { external_id: 'late-discounted' });
  const plan = await insertPlan(db, { code: 'rdp-late', billing_interval: 'P1M', flat_fee: '20.00', charges: callsAt('1.00'), settings: { disputeWindow: 'P90D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:late-discounted', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const close = (period: { start: string; end: string }) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }));
  await insertUsageEvents(db, Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `late-d-${i}`, eventType: 'rdp.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  await close(january);
  const billed = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january, discountPercentOff: '30' });
  expect(billed.total).toBe('21.00');
  await db('invoices').where({ id: billed.invoiceId }).update({ status: 'paid' }); // unpaid, the credit would be taken off it instead
  await insertUsageEvents(db, ['late-d-late-1', 'late-d-late-2'].map((eventId) => ({ customerId: customer.id, eventId, eventType: 'rdp.call', occurredAt: new Date('2029-01-20T00:00:00Z'), properties: {} })));
  const activities = createReratingActivities(db);
  const rerate = async (includeLateUsage: boolean) => {
    const id = randomUUID();
    await db.transaction((trx) => insertRerate(trx, { id, invoiceId: billed.invoiceId, subscriptionId: subscription.id, customerId: customer.id, requestedBy: 'finance', reason: 'late', correctedPlanId: null, includeLateUsage }));
    const proposed = await activities.proposeRerate({ rerateId: id });
    if (proposed.status !== 'proposed') return proposed;
    await activities.recordRerateDecision({ rerateId: id, approved: true, by: 'finance', reason: 'ok' });
    return activities.finalizeRerate({ rerateId: id });
  };
  expect(await rerate(true)).toMatchObject({ status: 'finalized', outcome: 'adjustment', total: '1.40' });
  await insertReversalEvents(db, [{ customerId: customer.id, eventId: 'late-d-late-1-reversal', eventType: 'rdp.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: 'late-d-late-1' }]);
  await close(february);
  const march = { start: '2029-03-01T00:00:00.000Z', end: '2029-04-01T00:00:00.000Z' };
  const credited = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  expect(credited.total).toBe('19.30');
  expect(await rerate(false)).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});
