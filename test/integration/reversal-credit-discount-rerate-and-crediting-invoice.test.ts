/**
 * Reversal credits and retention discounts: a reversal gives back what its outcomes were paid, at the discount of
 * the invoice that billed them, whatever discount the invoice carrying the credit has; and a re-rating of the period
 * afterwards (re-rating compares list prices) finds nothing more to give back.
 *
 * Timeline (2029), 1.00 a call, 20.00 a month, reversals accepted for 90 days:
 *   Jan 15  10 calls; Feb 1 invoice: Feb fee + January's calls, with or without a 30 % retention discount
 *   Feb 10  calls reversed; Mar 1 invoice: March fee + February's usage + the credit, with or without the discount
 * Postgres only: the activities are called as the workflow calls them.
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { creditReversalsOfSubscription } from '../../store/reversal-credit-notes';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rdd_calls', name: 'Calls', event_type: 'rdd.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' };
const february = { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' };
const march = { start: '2029-03-01T00:00:00.000Z', end: '2029-04-01T00:00:00.000Z' };

async function subscriber(name: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, {
    code: `rdd-${name}`,
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: [{ metricCode: 'rdd_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const close = (period: { start: string; end: string }) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }));
  await insertUsageEvents(db, Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `${name}-${i}`, eventType: 'rdd.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  const reverse = (count: number) =>
    insertReversalEvents(
      db,
      Array.from({ length: count }, (_, i) => ({ customerId: customer.id, eventId: `${name}-${i}-reversal`, eventType: 'rdd.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `${name}-${i}` })),
    );
  return { customerId: customer.id as string, subscriptionId: subscription.id as string, close, reverse };
}

const invoicing = () => createInvoicingActivities(db);
const linesOf = async (invoiceId: string) =>
  (await db('invoice_lines').where({ invoice_id: invoiceId }).orderBy('position')).map((line) => [line.kind, Number(line.amount).toFixed(2)]);

async function rerate(target: { invoiceId: string; subscriptionId: string; customerId: string }) {
  const id = randomUUID();
  await db.transaction((trx) =>
    insertRerate(trx, { id, invoiceId: target.invoiceId, subscriptionId: target.subscriptionId, customerId: target.customerId, requestedBy: 'finance', reason: 'audit', correctedPlanId: null, includeLateUsage: false }),
  );
  return createReratingActivities(db).proposeRerate({ rerateId: id });
}

test('paid at 30 % off, credited on an invoice with the discount too: the credit is what was paid, discounted once', async () => {
  const target = await subscriber('both-discounted');
  await target.close(january);
  // Feb 1: 20.00 + 10.00 - 9.00 = 21.00: the calls cost 7.00.
  const billed = await invoicing().createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: february, usagePeriod: january, discountPercentOff: '30' });
  expect(billed.total).toBe('21.00');
  await db('invoices').where({ id: billed.invoiceId }).update({ status: 'paid' }); // unpaid, the credit is taken off it instead
  await target.reverse(10);
  await target.close(february);
  // Mar 1: 20.00 - 6.00 discount on the fee = 14.00, less the 7.00 the calls were paid: 7.00.
  const credited = await invoicing().createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: march, usagePeriod: february, discountPercentOff: '30' });
  expect(await linesOf(credited.invoiceId)).toEqual([['flat_fee', '20.00'], ['usage', '0.00'], ['usage', '-7.00'], ['discount', '-6.00']]);
  expect(credited.total).toBe('7.00');
  // A re-rating of January afterwards: the 10 calls are credited, nothing more to give back.
  expect(await rerate({ ...target, invoiceId: billed.invoiceId })).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});

test('paid at the list price, credited on a discounted invoice: the credit is the whole list price', async () => {
  const target = await subscriber('credited-on-discounted');
  await target.close(january);
  const billed = await invoicing().createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(billed.total).toBe('30.00');
  await db('invoices').where({ id: billed.invoiceId }).update({ status: 'paid' }); // unpaid, the credit is taken off it instead
  await target.reverse(10);
  await target.close(february);
  // Mar 1: 20.00 - 6.00 discount on the fee, less the 10.00 the calls were paid: 4.00 (before: 7.00, 3.00 short).
  const credited = await invoicing().createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: march, usagePeriod: february, discountPercentOff: '30' });
  expect(credited.total).toBe('4.00');
  expect(await rerate({ ...target, invoiceId: billed.invoiceId })).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});

test('paid at 30 % off and credited at what was paid: a re-rating of the period gives nothing back a second time', async () => {
  const target = await subscriber('rerated-after');
  await target.close(january);
  const billed = await invoicing().createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: february, usagePeriod: january, discountPercentOff: '30' });
  await db('invoices').where({ id: billed.invoiceId }).update({ status: 'paid' }); // unpaid, the credit is taken off it instead
  await target.reverse(4);
  await target.close(february);
  // Mar 1: 20.00 - 2.80 (4 calls at 0.70).
  const credited = await invoicing().createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  expect(credited.total).toBe('17.20');
  expect(await rerate({ ...target, invoiceId: billed.invoiceId })).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});

test('reversed between the close and the invoice that bills the period: credited at that invoice discount, on it', async () => {
  const target = await subscriber('reversed-before-invoice');
  await target.close(january);
  await target.reverse(4);
  // Feb 1: 20.00 + 10.00 - 4.00 for the reversed calls, 30 % off all of it: 26.00 x 0.70 = 18.20.
  const billed = await invoicing().createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: february, usagePeriod: january, discountPercentOff: '30' });
  expect(billed.total).toBe('18.20');
});

test('paid at 30 % off, reversed after the subscription ended: the credit note gives back what was paid', async () => {
  const target = await subscriber('credit-note');
  await target.close(january);
  // Feb 1: 20.00 + 10.00 - 9.00 = 21.00, paid; then the subscription ends.
  const billed = await invoicing().createPeriodInvoice({ subscriptionId: target.subscriptionId, kind: 'period', flatFeePeriod: february, usagePeriod: january, discountPercentOff: '30' });
  await db('payments').insert({ invoice_id: billed.invoiceId, attempt: 1, status: 'succeeded', amount: billed.total, currency: 'USD', idempotency_key: `payment:${billed.invoiceId}:1`, gateway_charge_id: 'ch_credit_note' });
  await db('invoices').where({ id: billed.invoiceId }).update({ status: 'paid' });
  await db('subscriptions').where({ id: target.subscriptionId }).update({ status: 'canceled' });
  await target.reverse(10);
  const [issued] = await creditReversalsOfSubscription(db, target.subscriptionId);
  expect(Number(issued.creditNote.total).toFixed(2)).toBe('7.00');
  expect(await rerate({ ...target, invoiceId: billed.invoiceId })).toMatchObject({ status: 'nothing_to_do', total: '0.00' });
});
