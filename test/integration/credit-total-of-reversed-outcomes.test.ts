/**
 * Outcomes reversed after they were paid for, whose credit makes the next invoice come out negative (a credit
 * total): the credit is the reversed outcomes' money, paid on the invoice that billed them, and is refunded from an
 * invoice "of the credited time" (store/credit-total-refunds.ts), read as an invoice whose own period overlaps the
 * negative invoice's. Neither invoice that took the money did:
 *   - billed on a threshold invoice and reversed while the period was open: the period invoice (dated in the next
 *     fee period) takes back all the threshold invoice (dated in the usage period) billed;
 *   - billed on last month's period invoice (dated in the month after the usage) and reversed after the close: the
 *     next period invoice (dated a month later still) carries the credit.
 * Nothing was refunded (the customer owed the credit until the janitor's report was acted on). The credited time now
 * counts the invoices that billed what the credit's lines take back (store/credit-total-refunds.ts ofCreditedTime).
 *
 * Postgres only: the activities are called as the workflow calls them.
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import { createThresholdActivities } from '../../activities/thresholds';
import { refundCreditTotal } from '../../store/credit-total-refunds';
import type { Database } from '../../store/database';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'to_calls', name: 'Calls', event_type: 'to.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' };
const february = { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' };
const march = { start: '2029-03-01T00:00:00.000Z', end: '2029-04-01T00:00:00.000Z' };
const money = (value: string | number) => Number(value).toFixed(2);

//   Jan 15  8 calls at 1.00; Jan 16 threshold invoice (threshold 5.00) 8.00, paid
//   Jan 20  6 of the calls reversed (the period is open: they stop counting)
//   Feb 1   the period invoice: 2.00 of January - 8.00 billed on the threshold invoice = -6.00, refunded from the
//           threshold invoice's payment
test('a credit total made of outcomes reversed after a threshold invoice billed them is refunded from that invoice', async () => {
  const customer = await insertCustomer(db, { external_id: 'reversed-open' });
  const plan = await insertPlan(db, {
    code: 'to-thresholds',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'to_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D', usageThresholds: { amounts: ['5.00'] } },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:reversed-open', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 8 }, (_, i) => ({ customerId: customer.id, eventId: `to-${i}`, eventType: 'to.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  const threshold = await createThresholdActivities(db).createThresholdInvoice({ subscriptionId: subscription.id, usageStart: january.start, at: '2029-01-16T00:00:00.000Z', planId: plan.id });
  expect(threshold.invoice?.total).toBe('8.00');
  const thresholdId = threshold.invoice!.invoiceId;
  await db('payments').insert({ invoice_id: thresholdId, attempt: 1, status: 'succeeded', amount: '8.00', currency: 'USD', idempotency_key: `payment:${thresholdId}:1`, gateway_charge_id: `ch_${thresholdId}` });
  await db('invoices').where({ id: thresholdId }).update({ status: 'paid' });

  await insertReversalEvents(
    db,
    Array.from({ length: 6 }, (_, i) => ({ customerId: customer.id, eventId: `to-${i}-reversal`, eventType: 'to.call', occurredAt: new Date('2029-01-20T00:00:00Z'), properties: {}, reversesEventId: `to-${i}` })),
  );
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: plan.id, charges: plan.charges as never }),
  );
  const period = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(period.total).toBe('-6.00');

  const refunded = await refundCreditTotal(db, period.invoiceId);
  expect({
    refunds: refunded.refunds.map((refund) => [refund.invoice_id === thresholdId ? 'threshold invoice' : refund.invoice_id, money(refund.amount)]),
    unrefunded: refunded.unrefunded?.amount ?? null,
  }).toEqual({ refunds: [['threshold invoice', '6.00']], unrefunded: null });
});

//   Jan 15  8 calls at 1.00 (no flat fee); Feb 1 invoice (February, bills January's usage) 8.00, paid
//   Feb 10  6 January calls reversed; Feb 15 one call
//   Mar 1   invoice (March): 1.00 of February - 6.00 for January's reversed calls = -5.00, refunded from the
//           February 1 invoice's payment (the one that billed them)
test('a credit total made of outcomes reversed after last month\'s invoice billed them is refunded from that invoice', async () => {
  const customer = await insertCustomer(db, { external_id: 'reversed-closed' });
  const plan = await insertPlan(db, {
    code: 'to-payg',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode: 'to_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:reversed-closed', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const close = (period: { start: string; end: string }) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }));
  await insertUsageEvents(db, Array.from({ length: 8 }, (_, i) => ({ customerId: customer.id, eventId: `tc-${i}`, eventType: 'to.call', occurredAt: new Date('2029-01-15T00:00:00Z'), properties: {} })));
  await close(january);
  const invoicing = createInvoicingActivities(db);
  const billed = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(billed.total).toBe('8.00');
  await db('payments').insert({ invoice_id: billed.invoiceId, attempt: 1, status: 'succeeded', amount: '8.00', currency: 'USD', idempotency_key: `payment:${billed.invoiceId}:1`, gateway_charge_id: `ch_${billed.invoiceId}` });
  await db('invoices').where({ id: billed.invoiceId }).update({ status: 'paid' });

  await insertReversalEvents(
    db,
    Array.from({ length: 6 }, (_, i) => ({ customerId: customer.id, eventId: `tc-${i}-reversal`, eventType: 'to.call', occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `tc-${i}` })),
  );
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'tc-feb', eventType: 'to.call', occurredAt: new Date('2029-02-15T00:00:00Z'), properties: {} }]);
  await close(february);
  const credit = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  expect(credit.total).toBe('-5.00');

  const refunded = await refundCreditTotal(db, credit.invoiceId);
  expect({
    refunds: refunded.refunds.map((refund) => [refund.invoice_id === billed.invoiceId ? 'invoice that billed January' : refund.invoice_id, money(refund.amount)]),
    unrefunded: refunded.unrefunded?.amount ?? null,
  }).toEqual({ refunds: [['invoice that billed January', '5.00']], unrefunded: null });
});
