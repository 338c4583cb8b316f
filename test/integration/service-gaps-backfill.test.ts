/**
 * Subscriptions won back before migration 0660 forgot their service gap when they left `canceled`; migration 0661
 * finds it again from what stayed: the stretch between two usage closes (or from the last close to the current
 * period's start) in which the customer accepted a win-back offer. A hole between closes without one (a period in
 * its grace window while an immediate change closed the next one's first stretch) is left alone: it is still billed.
 * A real Postgres, rows written as the workflow would have left them.
 */
import { backfillServiceGaps } from '../../migrations/0661_backfill_subscriptions_service_gaps';
import type { Database } from '../../store/database';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => db?.destroy());

const at = (day: string) => new Date(`2036-${day}T00:00:00Z`);

async function subscriptionWith(status: string, currentPeriodStart: string, closes: readonly [string, string][], winBackAcceptedAt: string | null): Promise<string> {
  const plan = await insertPlan(db, { code: `backfill-${Math.random()}`, billing_interval: 'P1M', flat_fee: '10.00' });
  const customer = await insertCustomer(db);
  const { row } = await insertSubscription(db, customer, plan, at('01-01'));
  await db('subscriptions').where({ id: row.id }).update({ status, current_period_start: at(currentPeriodStart) });
  for (const [start, end] of closes) {
    await db('usage_period_closures').insert({ subscription_id: row.id, customer_id: customer.id, period_start: at(start), period_end: at(end), totals: {}, event_count: 0 });
  }
  if (winBackAcceptedAt) {
    await db('customer_offers').insert({
      customer_id: customer.id,
      subscription_id: row.id,
      kind: 'win_back',
      terms: {},
      offered_at: at('01-02'),
      expires_at: at('12-31'),
      answer: 'accepted',
      answered_at: at(winBackAcceptedAt),
    });
  }
  return row.id;
}

async function gapsOf(id: string): Promise<string[][]> {
  const rows = await db.raw('SELECT lower(g) AS "from", upper(g) AS until FROM subscriptions s, unnest(s.service_gaps) g WHERE s.id = ? ORDER BY 1', [id]);
  return rows.rows.map((gap: { from: Date; until: Date }) => [gap.from.toISOString().slice(5, 10), gap.until.toISOString().slice(5, 10)]);
}

test('the stretch of a win-back between closes, or before the restarted period is closed, becomes a gap; other holes do not', async () => {
  // Closed [Jan 1, Jan 5) by a cancellation now, won back Feb 5, the restarted period [Feb 5, Mar 5) closed.
  const closedAfter = await subscriptionWith('active', '03-05', [['01-01', '01-05'], ['02-05', '03-05']], '02-05');
  // The same, the restarted period still open.
  const openAfter = await subscriptionWith('active', '02-05', [['01-01', '01-05']], '02-05');
  // Won back, canceled again: only the stretch holding the acceptance (the one after the last close waits for one).
  const canceledAgain = await subscriptionWith('canceled', '02-05', [['01-01', '01-05'], ['02-05', '02-10']], '02-05');
  // A period in its grace window [Feb 1, Mar 1) not closed yet while the next one's first stretch [Mar 1, Mar 3) is.
  const inGrace = await subscriptionWith('active', '03-01', [['01-01', '02-01'], ['03-01', '03-03']], null);
  // Never restarted: closes back to back.
  const plain = await subscriptionWith('active', '03-01', [['01-01', '02-01'], ['02-01', '03-01']], null);

  await backfillServiceGaps(db);
  await backfillServiceGaps(db); // run again: a union, nothing more

  expect({
    closedAfter: await gapsOf(closedAfter),
    openAfter: await gapsOf(openAfter),
    canceledAgain: await gapsOf(canceledAgain),
    inGrace: await gapsOf(inGrace),
    plain: await gapsOf(plain),
  }).toEqual({
    closedAfter: [['01-05', '02-05']],
    openAfter: [['01-05', '02-05']],
    canceledAgain: [['01-05', '02-05']],
    inGrace: [],
    plain: [],
  });
});
