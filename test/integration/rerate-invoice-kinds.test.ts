/**
 * Re-rating compares a period's recomputed usage with what the re-rated invoice billed for it. Asked for an invoice
 * that billed only part of the period (a threshold invoice, an earlier re-rating's adjustment), it proposed the
 * rest of the period as owed again, although the period invoice had billed it. Only the invoice that billed the
 * whole period is re-rated; the others are refused before anything is proposed.
 *
 * Timeline (2027), 10.00 a month + 0.10 a call, threshold 5.00:
 *   Jan 10  60 calls = 6.00: threshold invoice 6.00
 *   Jan 20  40 more calls
 *   Feb 1   period invoice: 10.00 fee + 10.00 usage − 6.00 billed on the threshold invoice = 14.00
 *   Feb 3   20 calls stamped Jan 25 arrive late: a re-rating bills them (adjustment 2.00)
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createReratingActivities } from '../../activities/rerating';
import { createThresholdActivities } from '../../activities/thresholds';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'wi_calls', name: 'Calls', event_type: 'wi.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2027-01-01T00:00:00.000Z', end: '2027-02-01T00:00:00.000Z' };
const february = { start: '2027-02-01T00:00:00.000Z', end: '2027-03-01T00:00:00.000Z' };

function calls(customerId: string, prefix: string, count: number, at: string) {
  return insertUsageEvents(db, Array.from({ length: count }, (_, i) => ({ customerId, eventId: `${prefix}-${i}`, eventType: 'wi.call', occurredAt: new Date(at), properties: {} })));
}

async function requestRerate(invoiceId: string, subscriptionId: string, customerId: string, includeLateUsage: boolean) {
  const id = randomUUID();
  await db.transaction((trx) => insertRerate(trx, { id, invoiceId, subscriptionId, customerId, requestedBy: 'finance', reason: 'audit', correctedPlanId: null, includeLateUsage }));
  return id;
}

test('only the invoice that billed the whole period is re-rated: a threshold invoice or an adjustment is refused', async () => {
  const customer = await insertCustomer(db, { external_id: 'wi-threshold' });
  const plan = await insertPlan(db, {
    code: 'wi-threshold', billing_interval: 'P1M', flat_fee: '10.00',
    charges: [{ metricCode: 'wi_calls', price: { model: 'per_unit', unitPrice: '0.10' } }] as never,
    settings: { usageThresholds: { amounts: ['5.00'] } },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:wi-threshold', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await calls(customer.id, 'wi-a', 60, '2027-01-10T00:00:00Z');
  const threshold = await createThresholdActivities(db).createThresholdInvoice({ subscriptionId: subscription.id, usageStart: january.start, at: '2027-01-11T00:00:00.000Z', planId: plan.id });
  expect(threshold.invoice?.total).toBe('6.00');
  await calls(customer.id, 'wi-b', 40, '2027-01-20T00:00:00Z');
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: plan.id, charges: plan.charges as never }));
  const period = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(period.total).toBe('14.00');

  const activities = createReratingActivities(db);
  // The threshold invoice billed 6.00 of January's 10.00; re-rated, the other 4.00 came out as owed again.
  const ofThreshold = await requestRerate(threshold.invoice!.invoiceId, subscription.id, customer.id, false);
  await expect(activities.proposeRerate({ rerateId: ofThreshold })).rejects.toMatchObject({ type: 'invoice_not_rerateable', nonRetryable: true });

  // The period invoice is the one to re-rate: late calls billed by an adjustment.
  await calls(customer.id, 'wi-late', 20, '2027-01-25T00:00:00Z');
  const late = await requestRerate(period.invoiceId, subscription.id, customer.id, true);
  expect(await activities.proposeRerate({ rerateId: late })).toMatchObject({ status: 'proposed', outcome: 'adjustment', total: '2.00' });
  await activities.recordRerateDecision({ rerateId: late, approved: true, by: 'finance', reason: 'ok' });
  const adjustmentId = (await activities.finalizeRerate({ rerateId: late })).resultInvoiceId!;
  // The adjustment billed 2.00 of January's 12.00; re-rated, the other 10.00 came out as owed again.
  const ofAdjustment = await requestRerate(adjustmentId, subscription.id, customer.id, false);
  await expect(activities.proposeRerate({ rerateId: ofAdjustment })).rejects.toMatchObject({ type: 'invoice_not_rerateable' });
  // Nothing was proposed or billed by the refused ones; the period invoice has nothing left to correct.
  expect(await db('invoices').where({ subscription_id: subscription.id, kind: 'adjustment' }).count<{ n: string }[]>('* as n')).toEqual([{ n: '1' }]);
  expect(await activities.proposeRerate({ rerateId: await requestRerate(period.invoiceId, subscription.id, customer.id, true) })).toMatchObject({ status: 'nothing_to_do' });
});
