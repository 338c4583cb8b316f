/**
 * A resume (or a paid suspension) moves the period's end; the status record carries the move to the row
 * (store/subscriptions.ts `recordMovedPeriodEnd`). Only the period the row shows moves, and a cap that held to its
 * end holds to the new one (before, a cap set before a pause expired at the old end and let usage in). Real Postgres.
 */
import type { Database } from '../../store/database';
import { capUsageUntil } from '../../store/subscription-billing';
import { mirrorSubscriptionStatus } from '../../store/subscriptions';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => db?.destroy());

const JAN = new Date('2030-01-01T00:00:00Z');
const FEB = new Date('2030-02-01T00:00:00Z');
const FEB_11 = new Date('2030-02-11T00:00:00Z');

async function pausedSubscription(cappedUntil: Date | null): Promise<string> {
  const customer = await insertCustomer(db);
  const plan = await insertPlan(db, { code: `moved-${customer.id}`, billing_interval: 'P1M', flat_fee: '10.00' });
  const { row } = await insertSubscription(db, customer, plan, JAN);
  await db('subscriptions').where({ id: row.id }).update({ status: 'paused', current_period_start: JAN, current_period_end: FEB });
  if (cappedUntil) await capUsageUntil(db, row.id, { from: JAN, until: cappedUntil });
  return row.id;
}

const resumed = (subscriptionId: string, from: Date) =>
  mirrorSubscriptionStatus(db, {
    subscriptionId,
    status: 'active',
    at: '2030-01-20T00:00:00.000Z',
    reason: 'resumed',
    trialEnd: null,
    usageBlocked: false,
    movedPeriodEnd: { from: from.toISOString(), to: FEB_11.toISOString() },
  });

const rowOf = (id: string) => db('subscriptions').where({ id }).first('status', 'current_period_end', 'usage_capped_until');
/** Whether ingestion refuses usage stamped at `at` as capped (the stretches it judges the event's time against). */
const cappedAt = async (id: string, at: string): Promise<boolean> =>
  (await db('subscriptions').where({ id }).first(db.raw('usage_capped_stretches @> ?::timestamptz AS capped', [at]))).capped;

test('the moved end is recorded, and a cap to the old end now holds to the new one', async () => {
  const id = await pausedSubscription(FEB);
  await resumed(id, FEB);
  expect(await rowOf(id)).toEqual({ status: 'active', current_period_end: FEB_11, usage_capped_until: FEB_11 });
  // Usage stamped in the moved time belongs to the capped period.
  expect([await cappedAt(id, '2030-01-15T00:00:00Z'), await cappedAt(id, '2030-02-05T00:00:00Z'), await cappedAt(id, '2030-02-11T00:00:00Z')]).toEqual([true, true, false]);
  // Retried (the activity ran again): nothing moves twice.
  await resumed(id, FEB);
  expect((await rowOf(id)).current_period_end).toEqual(FEB_11);
});

test('a cap to another instant keeps it; a move from an end the row does not show changes no period', async () => {
  const other = new Date('2030-01-25T00:00:00Z');
  const id = await pausedSubscription(other);
  await resumed(id, FEB);
  expect(await rowOf(id)).toEqual({ status: 'active', current_period_end: FEB_11, usage_capped_until: other });
  expect(await cappedAt(id, '2030-02-05T00:00:00Z')).toBe(false);

  const stale = await pausedSubscription(null);
  await resumed(stale, new Date('2030-03-01T00:00:00Z'));
  expect(await rowOf(stale)).toEqual({ status: 'active', current_period_end: FEB, usage_capped_until: null });
});
