/**
 * A reversal credits what its event added to what the close billed, no more:
 *  - on a corrections metric (`allow_negative`), the close bills the period's sum floored at 0; the reversal of a
 *    negative correction must start from the real sum, not from the floor (+10 and -15 billed 0: the -15 reversed,
 *    the period is worth 10, not 15);
 *  - an event stored before the current numeric checks (a value the close's numeric pattern does not read) counted
 *    for nothing at the close: its reversal gives nothing back, and does not stop the invoice that carries it.
 *
 * Timeline (2029), 1.00 a unit, no flat fee, reversals accepted for 90 days:
 *   Jan 15  events; Feb 1 invoice for January; Feb 10 one January event reversed; Mar 1 invoice carries the credit
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
  await db('billable_metrics').insert([
    { code: 'rn_adjust', name: 'Adjustments', event_type: 'rn.adjust', aggregation: 'sum', property: 'units', allow_negative: true },
    { code: 'rn_units', name: 'Units', event_type: 'rn.units', aggregation: 'sum', property: 'units' },
  ]);
});

afterAll(async () => {
  await db?.destroy();
});

const january = { start: '2029-01-01T00:00:00.000Z', end: '2029-02-01T00:00:00.000Z' };
const february = { start: '2029-02-01T00:00:00.000Z', end: '2029-03-01T00:00:00.000Z' };
const march = { start: '2029-03-01T00:00:00.000Z', end: '2029-04-01T00:00:00.000Z' };

/** January's events (`units` as stored) invoiced on Feb 1, then `reversed` reversed on Feb 10: the Mar 1 invoice. */
async function reversedAfterInvoice(name: string, metricCode: string, eventType: string, units: readonly unknown[], reversed: number) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, {
    code: `rn-${name}`,
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metricCode, price: { model: 'per_unit', unitPrice: '1.00' } }] as never,
    settings: { disputeWindow: 'P90D' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const close = (period: { start: string; end: string }) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }));
  await insertUsageEvents(db, units.map((value, i) => ({ customerId: customer.id, eventId: `${name}-${i}`, eventType, occurredAt: new Date('2029-01-15T00:00:00Z'), properties: { units: value } })));
  await close(january);
  const invoicing = createInvoicingActivities(db);
  const billed = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  await insertReversalEvents(db, [{ customerId: customer.id, eventId: `${name}-${reversed}-reversal`, eventType, occurredAt: new Date('2029-02-10T00:00:00Z'), properties: {}, reversesEventId: `${name}-${reversed}` }]);
  await close(february);
  const next = await invoicing.createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: march, usagePeriod: february });
  return { billed: billed.total, next: next.total };
}

test('a negative correction reversed after its period was billed at 0 bills what the period is worth without it', async () => {
  // +10 and -15: -5, billed 0.00. Without the -15 the period is worth 10.00: the Mar 1 invoice bills 10.00 more.
  expect(await reversedAfterInvoice('negative', 'rn_adjust', 'rn.adjust', [10, -15], 1)).toEqual({ billed: '0.00', next: '10.00' });
});

test('a negative correction reversed after its period was billed above 0 bills its value back', async () => {
  // +20 and -5: 15.00 billed. Without the -5 the period is worth 20.00: 5.00 more.
  expect(await reversedAfterInvoice('negative-above-floor', 'rn_adjust', 'rn.adjust', [20, -5], 1)).toEqual({ billed: '15.00', next: '5.00' });
});

test('an event whose value the close could not read (13 integer digits) is reversed without a credit', async () => {
  // The close counted 5 and skipped 1234567890123 (stored before the checks): its reversal takes nothing off the 5.00.
  expect(await reversedAfterInvoice('too-long', 'rn_units', 'rn.units', [5, '1234567890123'], 1)).toEqual({ billed: '5.00', next: '0.00' });
});

test('an event whose value is not a number is reversed without a credit, and the invoice carrying it is written', async () => {
  expect(await reversedAfterInvoice('not-a-number', 'rn_units', 'rn.units', [5, 'lots'], 1)).toEqual({ billed: '5.00', next: '0.00' });
});

test('a negative value on a metric that does not allow negatives counted for nothing: its reversal gives nothing', async () => {
  expect(await reversedAfterInvoice('negative-not-allowed', 'rn_units', 'rn.units', [5, -3], 1)).toEqual({ billed: '5.00', next: '0.00' });
});
