/**
 * The customer usage page's chart after an immediate plan change: the proration invoice billed the usage before the
 * change and the period's invoice bills from it, so the chart's days count from the change, as the usage endpoint
 * does. An event stamped before the change that arrives after it is late usage, on neither invoice: it is listed as
 * late by the usage endpoint and must not show in the chart as this period's usage.
 *
 *   period  2030-03-01 ......................................................................... 2030-04-01
 *   days    | 03-05 10:00 n=100 (stamped before the change, arrives after it: late) | 03-10 12:00 plan change |
 *           | 03-10 13:00 n=5 | 03-11 09:00 n=7 | now 03-11 12:00
 */
import type { Database } from '../../store/database';
import { insertUsageEvents } from '../../store/usage';
import type { PlanRow } from '../../store/catalog';
import type { CustomerRow } from '../../store/customers';
import type { SubscriptionRow } from '../../store/subscriptions';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let customer: CustomerRow;
let subscription: SubscriptionRow;
let token: TestApiKey;

const NOW = new Date('2030-03-11T12:00:00Z');
const PERIOD = { start: new Date('2030-03-01T00:00:00Z'), end: new Date('2030-04-01T00:00:00Z') };
const CHANGE_AT = new Date('2030-03-10T12:00:00Z');

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'pc_tokens', name: 'Tokens', event_type: 'pc.llm', aggregation: 'sum', property: 'n', filters: '{}' });
  const charges = [{ metricCode: 'pc_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never;
  const oldPlan: PlanRow = await insertPlan(db, { code: 'pc-old', billing_interval: 'P1M', flat_fee: '10.00', charges });
  const newPlan: PlanRow = await insertPlan(db, { code: 'pc-new', billing_interval: 'P1M', flat_fee: '20.00', charges });
  customer = await insertCustomer(db, { name: 'Changer' });
  subscription = (await insertSubscription(db, customer, newPlan, PERIOD.start)).row;
  await db('subscriptions').where({ id: subscription.id }).update({ status: 'active', current_period_start: PERIOD.start, current_period_end: PERIOD.end });
  await db('plan_changes').insert({
    subscription_id: subscription.id,
    request_key: 'change-1',
    change_at: CHANGE_AT,
    old_plan_id: oldPlan.id,
    new_plan_id: newPlan.id,
    requested_by: 'test',
  });
  // The usage before the change was claimed by the proration invoice's close; this one arrived after that close.
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'late', eventType: 'pc.llm', occurredAt: new Date('2030-03-05T10:00:00Z'), properties: { n: 100 } },
    { customerId: customer.id, eventId: 'a1', eventType: 'pc.llm', occurredAt: new Date('2030-03-10T13:00:00Z'), properties: { n: 5 } },
    { customerId: customer.id, eventId: 'a2', eventType: 'pc.llm', occurredAt: new Date('2030-03-11T09:00:00Z'), properties: { n: 7 } },
  ]);
  token = await createTestApiKey(db, 'customer_usage', { customerId: customer.id, expiresAt: new Date(Date.now() + 3_600_000) });
  api = await serveApiOnly(db, { now: () => NOW });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

test('after an immediate plan change the days add up to the usage endpoint quantity: usage before the change is not this invoice’s', async () => {
  const [daily, usage] = await Promise.all([
    api.http.call('GET', `/v1/subscriptions/${subscription.id}/usage/daily`, undefined, token.headers),
    api.http.call('GET', `/v1/subscriptions/${subscription.id}/usage`, undefined, token.headers),
  ]);
  expect(daily.status).toBe(200);
  expect(usage.status).toBe(200);
  const quantity = usage.json.usage.find((metric: { metric_code: string }) => metric.metric_code === 'pc_tokens').quantity;
  expect(quantity).toBe('12');
  const days = daily.json.metrics.find((metric: { metric_code: string }) => metric.metric_code === 'pc_tokens').days as { date: string; quantity: string; event_count: number }[];
  // One bar per UTC day of the period so far; the days before the change carry nothing the period's invoice bills.
  expect(days.map((day) => day.date)).toEqual(Array.from({ length: 11 }, (_, index) => `2030-03-${String(index + 1).padStart(2, '0')}`));
  expect(days.filter((day) => day.quantity !== '0')).toEqual([
    { date: '2030-03-10', quantity: '5', event_count: 1 },
    { date: '2030-03-11', quantity: '7', event_count: 1 },
  ]);
});
