/**
 * `recordScheduledChange` (store/metered-overlaps.ts) writes after the workflow answered; a cancellation and a plan
 * switch write the row without the customer's lock, so the row it finds may no longer be able to take the change.
 * Each row state below is what such a writer leaves; the record stands only where the change still may take effect.
 * Before, every one of them was written (the ended ones then refused, after a win-back, a plan never moved to).
 *
 * Postgres only: the rows are written as the workflow's activities leave them.
 */
import type { PlanRow } from '../../store/catalog';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import { recordScheduledChange } from '../../store/metered-overlaps';
import type { SubscriptionRow } from '../../store/subscriptions';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
let customer: CustomerRow;
let other: PlanRow;
let calls: PlanRow;

const PERIOD_START = new Date('2035-06-01T00:00:00Z');
const AT = new Date('2035-07-01T00:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert([
    { code: 'rc_calls', name: 'Calls', event_type: 'rc.call', aggregation: 'count' },
    { code: 'rc_other', name: 'Other', event_type: 'rc.other', aggregation: 'count' },
  ]);
  const plan = (code: string, metricCode: string) => insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '0', charges: [{ metricCode, price: { model: 'per_unit', unitPrice: '1.00' } }] as never });
  other = await plan('rc-other', 'rc_other');
  calls = await plan('rc-calls', 'rc_calls');
  customer = await insertCustomer(db, { external_id: 'rc-customer' });
});

afterAll(async () => {
  await db?.destroy();
});

/** A subscription on rc-other in [Jun 1, Jul 1), as the named writer left it just before the record. */
async function subscriptionLeftAs(columns: Partial<SubscriptionRow>): Promise<string> {
  const [row] = await db<SubscriptionRow>('subscriptions')
    .insert({ customer_id: customer.id, plan_id: other.id, status: 'active', workflow_id: `direct:${Math.random()}`, start_at: PERIOD_START, current_period_start: PERIOD_START, current_period_end: AT, ...columns })
    .returning('id');
  return row.id;
}

async function recordedOn(id: string): Promise<boolean> {
  await db.transaction((trx) => recordScheduledChange(trx, id, calls.id, AT));
  const row = (await db<SubscriptionRow>('subscriptions').where({ id }).first())!;
  return row.scheduled_change_plan_id === calls.id && row.scheduled_change_at?.getTime() === AT.getTime();
}

test('the record stands only on a row that can still take the change', async () => {
  const endedAt = new Date('2035-06-10T00:00:00Z');
  const cases = {
    active: await subscriptionLeftAs({}),
    // A cancellation at the period's end may still be undone (a retention offer accepted): the change may apply.
    pendingCancellation: await subscriptionLeftAs({ status: 'pending_cancellation' }),
    // A cancellation now accepted, its status not written yet: the usage end bounds the change; `canceled` clears it.
    cancelingNow: await subscriptionLeftAs({ usage_ends_at: endedAt }),
    canceled: await subscriptionLeftAs({ status: 'canceled', canceled_at: endedAt, usage_ends_at: endedAt }),
    // needs_attention over the end (a charge after it waits for ops) keeps when it was canceled.
    needsAttentionAfterTheEnd: await subscriptionLeftAs({ status: 'needs_attention', canceled_at: endedAt, usage_ends_at: endedAt }),
    // The boundary applied the change (its switch cleared the columns) before the record came.
    switchedAtTheBoundary: await subscriptionLeftAs({ plan_id: calls.id, current_period_start: AT, current_period_end: new Date('2035-08-01T00:00:00Z') }),
    // The row shows the period the change's instant opens, its plan not switched: the workflow may hold the change for
    // the next boundary (a lost answer taken in the grace window), so the record stands until a later period shows.
    periodOpenedAtTheInstant: await subscriptionLeftAs({ current_period_start: AT, current_period_end: new Date('2035-08-01T00:00:00Z') }),
    // A period after the one the instant opens: the record would have lapsed (scheduledChangeLapsed).
    periodAfterTheInstant: await subscriptionLeftAs({ current_period_start: new Date('2035-08-01T00:00:00Z'), current_period_end: new Date('2035-09-01T00:00:00Z') }),
  };

  const recorded: Record<string, boolean> = {};
  for (const [state, id] of Object.entries(cases)) recorded[state] = await recordedOn(id);

  expect(recorded).toEqual({
    active: true,
    pendingCancellation: true,
    cancelingNow: true,
    canceled: false,
    needsAttentionAfterTheEnd: false,
    switchedAtTheBoundary: false,
    periodOpenedAtTheInstant: true,
    periodAfterTheInstant: false,
  });
});
