/**
 * A late seat change (stored after its period closed, so never claimed) counts in every later period's opening
 * level. Reversed afterwards (allowed: it was never claimed, store/reversals.ts), it went on billing in every period
 * after the one whose close had counted it: that close kept it in its carried level, and a reversal takes an event
 * out of the reads, not out of a level already kept. The carried level now holds claimed changes only and the
 * unclaimed ones are read afresh each period, so the reversed seat stops billing with the next period.
 *
 * Postgres only: ingestion, reversal and closes are called as the API and the activity call them.
 */
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import { insertReversalEvents, reversalTargets } from '../../store/reversals';
import { closeUsage, insertUsageEvents, usageForCharges } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rv_seats', name: 'Seats', event_type: 'rv.seat', aggregation: 'prorated_sum', property: 'delta', allow_negative: true });
});

afterAll(async () => {
  await db?.destroy();
});

const charges = [{ metricCode: 'rv_seats', price: { model: 'per_unit', unitPrice: '10.00' } }] as unknown as Charge[];
const month = (m: number) => ({ start: new Date(Date.UTC(2029, m - 1, 1)), end: new Date(Date.UTC(2029, m, 1)) });

//   Jan 5   +1 seat (a); January closed
//   Jan 20  +1 seat (b), stored after January's close: late usage of January, unclaimed
//   Feb     opens at 2 seats: 2.00 (20.00)
//   Mar 3   b reversed (added by mistake; not claimed, so the reversal is accepted)
//   Mar     1 seat (10.00) - billed 2 (20.00), and every month after
test('a late seat change reversed after a later period counted it stops billing with the next period', async () => {
  const customer = await insertCustomer(db, { external_id: 'late-reversed' });
  const plan = await insertPlan(db, { code: 'rv-seats', billing_interval: 'P1M', flat_fee: '0', charges: charges as never, settings: { disputeWindow: 'P90D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:late-reversed', start_at: month(1).start, current_period_start: month(1).start, current_period_end: month(1).end })
    .returning('*');
  const close = (period: { start: Date; end: Date }) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: period.start, periodEnd: period.end, planId: plan.id, charges }));
  const event = (id: string, at: string, delta: number) => ({ customerId: customer.id, eventId: id, eventType: 'rv.seat', occurredAt: new Date(at), properties: { delta } });

  await insertUsageEvents(db, [event('a', '2029-01-05T00:00:00Z', 1)]);
  await close(month(1));
  await insertUsageEvents(db, [event('b', '2029-01-20T00:00:00Z', 1)]);
  expect((await close(month(2))).totals.rv_seats.quantity).toBe('2');

  expect((await reversalTargets(db, ['b'])).get('b')?.[0]).not.toHaveProperty('invoicedUnder'); // accepted: never claimed
  await insertReversalEvents(db, [{ customerId: customer.id, eventId: 'b-undo', eventType: 'rv.seat', occurredAt: new Date('2029-03-03T00:00:00Z'), properties: {}, reversesEventId: 'b' }]);
  const preview = await usageForCharges(db, charges, { kind: 'unclaimed', customerId: customer.id, from: month(3).start, to: month(3).end });
  expect(preview.map((usage) => usage.quantity)).toEqual(['1']);
  expect((await close(month(3))).totals.rv_seats.quantity).toBe('1');
  expect((await close(month(4))).totals.rv_seats.quantity).toBe('1');
});
