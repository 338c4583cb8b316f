/**
 * The usage views of a period whose grace window is open, after an immediate plan change made inside that window.
 *
 *   Mar 1 ............ Mar 2..11: 10 calls ............ Apr 1 00:00 boundary, grace opens (1 h)   00:00:02 change basic -> pro
 *   |-- basic (0.10 a call) ------------------------------|  the row still shows March until April's invoice opens it
 *
 * March's 10 calls are billed on the period invoice that opens April, at basic (the plan in force in March):
 * 10 x 0.10 = 1.00 (test/integration/plan-change-identity.test.ts). Until then the subscription shows the March
 * period, and GET /usage and /usage/daily showed it empty: they counted from the latest plan change, which lies
 * after the shown period's end, so the window [change, period end) was inverted (0 calls, 0.00); and they rated at
 * the new plan (pro, 0.20 a call), not at the plan the period's invoice uses.
 */
import type { Database } from '../../store/database';
import { insertUsageEvents } from '../../store/usage';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

const NOW = new Date('2030-04-01T00:30:00Z'); // inside April 1's grace window
let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'app')).headers, now: () => NOW });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('inside the grace window, after a plan change there, the usage views show the shown period at its own plan', async () => {
  await db('billable_metrics').insert({ code: 'gw_calls', name: 'Calls', event_type: 'gw.call', aggregation: 'count' });
  const charge = (unitPrice: string) => [{ metricCode: 'gw_calls', price: { model: 'per_unit', unitPrice } }] as never;
  const basic = await insertPlan(db, { code: 'gw-basic', billing_interval: 'P1M', flat_fee: '3.10', charges: charge('0.10'), settings: { usageGracePeriod: 'PT1H' } as never });
  const pro = await insertPlan(db, { code: 'gw-pro', billing_interval: 'P1M', flat_fee: '6.20', charges: charge('0.20'), settings: { usageGracePeriod: 'PT1H' } as never });
  const customer = await insertCustomer(db);
  const { row: subscription } = await insertSubscription(db, customer, basic, new Date('2030-03-01T00:00:00Z'));
  const march = { start: new Date('2030-03-01T00:00:00Z'), end: new Date('2030-04-01T00:00:00Z') };
  // What the workflow has written by 00:30: March still the current period; the change recorded, the plan switched.
  await db('subscriptions').where({ id: subscription.id }).update({ status: 'active', plan_id: pro.id, current_period_start: march.start, current_period_end: march.end });
  await db('plan_changes').insert({
    subscription_id: subscription.id,
    request_key: 'grace-change',
    change_at: new Date('2030-04-01T00:00:02Z'),
    old_plan_id: basic.id,
    new_plan_id: pro.id,
    requested_by: 'test',
    period_start: march.end,
    period_end: new Date('2030-05-01T00:00:00Z'),
  });
  await insertUsageEvents(
    db,
    Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `gw-${i}`, eventType: 'gw.call', occurredAt: new Date(Date.UTC(2030, 2, 2 + i)), properties: {} })),
  );

  const usage = await api.http.call('GET', `/v1/subscriptions/${subscription.id}/usage`);
  expect(usage.status).toBe(200);
  expect(usage.json.period).toEqual({ start: march.start.toISOString(), end: march.end.toISOString() });
  expect(usage.json.usage).toEqual([expect.objectContaining({ metric_code: 'gw_calls', quantity: '10', event_count: 10, amount: '1.00' })]);
  expect(usage.json.projected.subtotal).toBe('1.00');

  const daily = await api.http.call('GET', `/v1/subscriptions/${subscription.id}/usage/daily`);
  expect(daily.status).toBe(200);
  const days = daily.json.metrics[0].days as { date: string; event_count: number }[];
  expect(days.reduce((sum, day) => sum + day.event_count, 0)).toBe(10);
});
