/**
 * The wallet's pending usage inside a grace window, after an immediate plan change made there (the set-up of
 * usage-view-plan-change-in-grace-window.test.ts): March's 10 calls (1.00 at basic) are neither closed nor invoiced
 * yet, so the next period invoice will draw them from the wallet; until then they are pending and the available
 * balance is the balance less them. store/wallets.ts pendingUsageCost counted from the latest plan change
 * (latestStretchStart), which lies after the shown period's end: the window was inverted, pending 0.00 and the
 * available balance 1.00 too high (what auto-recharge and the balance watch read).
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
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers, now: () => NOW });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test("inside the grace window, after a plan change there, the wallet counts the shown period's usage as pending", async () => {
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

  // In effect from March: the invoice that bills March's usage draws on it (a grant from April would not).
  const granted = await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '25.00', source: 'promotional', effective_at: '2030-03-01T00:00:00Z' });
  expect(granted.status).toBe(201);
  const wallet = await api.http.call('GET', `/v1/customers/${customer.id}/wallet`);
  expect(wallet.status).toBe(200);
  expect({ pending: wallet.json.pending_usage, available: wallet.json.available }).toEqual({ pending: '1.00', available: '24.00' });
});
