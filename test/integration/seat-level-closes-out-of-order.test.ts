/**
 * Closes that commit out of period order. An immediate plan change inside the grace window after a boundary closes
 * the new period's first stretch (its proration invoice) at once, while the period before it closes only when its
 * grace window ends (README, plan-change). The stretch's close kept a level without the earlier period's seat changes
 * (not claimed yet; with received_at > closed_at, one arriving in the grace window after the stretch's close), and
 * the next stretch opened from that level: those changes never reached any later period.
 * A close now refreshes the levels kept by the closes of later periods that committed before it (store/usage.ts
 * closeUsage, as claiming late events does).
 *
 * Postgres only: the closes are called as the activity calls them, in the order the workflow runs them.
 */
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents, usageForCharges } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'ooo_seats', name: 'Seats', event_type: 'ooo.seat', aggregation: 'prorated_sum', property: 'delta', allow_negative: true });
});

afterAll(async () => {
  await db?.destroy();
});

const charges = [{ metricCode: 'ooo_seats', price: { model: 'per_unit', unitPrice: '10.00' } }] as unknown as Charge[];

//   Jan 5   +1 seat; January closed
//   Feb 10  +2 seats
//   Mar 1 00:10  immediate plan change in February's grace window: the stretch [Mar 1, Mar 1 00:10) closes now
//   Mar 1 00:30  +4 seats stamped Feb 20 (inside the grace window: February's usage)
//   Mar 1 01:00  February closes (claims Feb 10 and Feb 20)
//   Mar 1 00:10 - Apr 1: 7 seats all along - it opened at 1 (3 before the change: Feb 20 lost)
test('a period closed after a stretch of the next one still reaches the stretches after it', async () => {
  const customer = await insertCustomer(db, { external_id: 'out-of-order' });
  const plan = await insertPlan(db, { code: 'ooo-seats', billing_interval: 'P1M', flat_fee: '0', charges: charges as never });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:out-of-order', start_at: new Date('2029-01-01T00:00:00Z') })
    .returning('*');
  const close = (start: string, end: string) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(start), periodEnd: new Date(end), planId: plan.id, charges }));
  const event = (id: string, at: string, delta: number) => ({ customerId: customer.id, eventId: id, eventType: 'ooo.seat', occurredAt: new Date(at), properties: { delta } });

  await insertUsageEvents(db, [event('a', '2029-01-05T00:00:00Z', 1)]);
  await close('2029-01-01T00:00:00Z', '2029-02-01T00:00:00Z');
  await insertUsageEvents(db, [event('b', '2029-02-10T00:00:00Z', 2)]);
  const stretch = await close('2029-03-01T00:00:00Z', '2029-03-01T00:10:00Z');
  expect(stretch.totals.ooo_seats.openingLevel).toBe('3');
  await insertUsageEvents(db, [event('c', '2029-02-20T00:00:00Z', 4)]);
  const february = await close('2029-02-01T00:00:00Z', '2029-03-01T00:00:00Z');
  expect(february.event_count).toBe('2');
  expect(february.totals.ooo_seats.closingLevel?.level).toBe('7');

  const preview = await usageForCharges(db, charges, { kind: 'unclaimed', customerId: customer.id, from: new Date('2029-03-01T00:10:00Z'), to: new Date('2029-04-01T00:00:00Z') }, plan.currency);
  expect(preview[0].openingLevel).toBe('7');
  const rest = await close('2029-03-01T00:10:00Z', '2029-04-01T00:00:00Z');
  expect([rest.totals.ooo_seats.openingLevel, rest.totals.ooo_seats.quantity]).toEqual(['7', '7']);
});
