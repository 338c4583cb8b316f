/**
 * A plan change scheduled for the period's end switches the row's plan at the boundary, before the closed period's
 * grace window ends. It is now kept in plan_changes (no period: not an immediate change), so what judges the closed
 * period meanwhile finds the plan it had: the usage views and the wallet (openStretchOf), and its limits
 * (entitlement-limit-old-period-after-scheduled-change.test.ts). Readers of immediate changes are unmoved. Real Postgres.
 */
import type { Database } from '../../store/database';
import { allowanceShareOf, latestStretchStart, openStretchOf } from '../../store/plan-changes';
import { switchSubscriptionPlan } from '../../store/subscriptions';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => db?.destroy());

const MAR = new Date('2031-03-01T00:00:00Z');
const APR = new Date('2031-04-01T00:00:00Z');
const MAY = new Date('2031-05-01T00:00:00Z');

test('a scheduled change is kept once with the plan it left; the closed period is still judged by that plan', async () => {
  const customer = await insertCustomer(db);
  const basic = await insertPlan(db, { code: 'sched-basic', billing_interval: 'P1M', flat_fee: '10.00' });
  const pro = await insertPlan(db, { code: 'sched-pro', billing_interval: 'P1M', flat_fee: '20.00' });
  const { row } = await insertSubscription(db, customer, basic, MAR);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: MAR, current_period_end: APR });

  const change = { subscriptionId: row.id, planId: pro.id, effective: 'period_end' as const, at: APR.toISOString(), requestedBy: 'test' };
  await switchSubscriptionPlan(db, change);
  await switchSubscriptionPlan(db, change); // a retried activity: nothing twice
  const kept = await db('plan_changes').where({ subscription_id: row.id });
  expect(kept.map((c) => ({ at: c.change_at, old: c.old_plan_id, new: c.new_plan_id, period: c.period_start }))).toEqual([{ at: APR, old: basic.id, new: pro.id, period: null }]);

  // In April's grace window the row shows March: rated at basic (before: at pro, the row's plan), counted from March 1.
  expect(await openStretchOf(db, row.id, { start: MAR, end: APR })).toEqual({ from: MAR, planId: basic.id });
  // April itself: from its start, at the row's plan; no allowance is cut by a change at its boundary.
  expect(await openStretchOf(db, row.id, { start: APR, end: MAY })).toEqual({ from: APR, planId: null });
  expect(await latestStretchStart(db, row.id, APR)).toEqual(APR);
  expect(await allowanceShareOf(db, row.id, { start: APR, end: null })).toEqual({ fraction: '1', leftAtStart: '1', leftAtEnd: '0' });
});
