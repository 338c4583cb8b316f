/**
 * A late seat change (stored after its period closed, so never claimed) counts in every later period's opening
 * level. Reversed before a later close read it, it bills nothing: the carried level holds claimed changes only and
 * the unclaimed ones are read afresh each period (before, a close that had counted it kept it in its carried level,
 * and the reversed seat went on billing in every period after). Reversed after a later close read it into that
 * period's opening level, that period is invoiced with the seat and no credit can take a level back: the reversal is
 * refused, as an invoiced seat change's is (store/reversals.ts; before, it was accepted and the period kept the seat).
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

async function seatSubscription(code: string) {
  const customer = await insertCustomer(db, { external_id: code });
  const plan = await insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '0', charges: charges as never, settings: { disputeWindow: 'P90D' } });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${code}`, start_at: month(1).start, current_period_start: month(1).start, current_period_end: month(1).end })
    .returning('*');
  const close = (period: { start: Date; end: Date }) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: period.start, periodEnd: period.end, planId: plan.id, charges }));
  const event = (id: string, at: string, delta: number) => ({ customerId: customer.id, eventId: id, eventType: 'rv.seat', occurredAt: new Date(at), properties: { delta } });
  const reverse = (id: string, at: string) => insertReversalEvents(db, [{ customerId: customer.id, eventId: `${id}-undo`, eventType: 'rv.seat', occurredAt: new Date(at), properties: {}, reversesEventId: id }]);
  return { customer, close, event, reverse };
}

//   Jan 5   +1 seat (a); January closed
//   Jan 20  +1 seat (b), stored after January's close: late usage of January, unclaimed
//   Feb 3   b reversed (added by mistake; no close has read it yet: accepted)
//   Feb, Mar  1 seat (10.00) each
test('a late seat change reversed before a later period read it bills nothing', async () => {
  const { customer, close, event, reverse } = await seatSubscription('late-reversed-early');
  await insertUsageEvents(db, [event('a', '2029-01-05T00:00:00Z', 1)]);
  await close(month(1));
  await insertUsageEvents(db, [event('b', '2029-01-20T00:00:00Z', 1)]);
  expect((await reversalTargets(db, ['b'])).get('b')?.find((target) => target.customerId === customer.id)).not.toHaveProperty('invoicedUnder');
  await reverse('b', '2029-02-03T00:00:00Z');
  const preview = await usageForCharges(db, charges, { kind: 'unclaimed', customerId: customer.id, from: month(2).start, to: month(2).end }, customer.currency);
  expect(preview.map((usage) => usage.quantity)).toEqual(['1']);
  expect((await close(month(2))).totals.rv_seats.quantity).toBe('1');
  expect((await close(month(3))).totals.rv_seats.quantity).toBe('1');
});

//   Jan 5   +1 seat (a); January closed
//   Jan 20  +1 seat (b), stored after January's close: late usage of January, unclaimed
//   Feb     opens at 2 seats: 2 (20.00), invoiced
//   Mar 3   b's reversal: refused (February billed it through its opening level); March and April bill 2 seats
test('a late seat change a later period already billed through its opening level cannot be reversed', async () => {
  const { customer, close, event } = await seatSubscription('late-reversed-after');
  await insertUsageEvents(db, [event('a', '2029-01-05T00:00:00Z', 1)]);
  await close(month(1));
  await insertUsageEvents(db, [event('b', '2029-01-20T00:00:00Z', 1)]);
  expect((await close(month(2))).totals.rv_seats.quantity).toBe('2');
  // Before: no invoicedUnder (accepted, never claimed), and February, which billed the seat, got no credit.
  expect((await reversalTargets(db, ['b'])).get('b')?.find((target) => target.customerId === customer.id)).toMatchObject({ invoicedUnder: { metricCode: 'rv_seats' } });
  expect((await close(month(3))).totals.rv_seats.quantity).toBe('2');
});
