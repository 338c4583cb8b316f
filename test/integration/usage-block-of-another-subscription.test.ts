/**
 * Events name a customer, and at most one subscription of a customer prices an event type at an instant (docs/api.md
 * "One subscription per event type"). A usage block or cap on one subscription refused the customer's events for
 * their other subscriptions too:
 *
 *   acme: A on plan "seats" (prices ob.seat), B on plan "calls" (prices ob.call), both from S (3 hours ago)
 *   A paused under the reject policy 1 hour ago (or capped for its period)
 *   - 40 calls stamped 30 minutes ago: refused usage_blocked (usage_cap_reached), although B, which prices them, gives
 *     full service; a client drops a 4xx, so B's 40 x 0.50 = 20.00 was never billed.
 *
 * Now an event is refused only when the subscription that prices its type at its time is blocked (or capped) then.
 * API and a real Postgres; B's period preview rates the usage as its invoice will.
 */
import { createSpendingActivities } from '../../activities/spending';
import type { Database } from '../../store/database';
import { mirrorSubscriptionStatus } from '../../store/subscriptions';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
const ids: { seats: string; calls: string } = { seats: '', calls: '' };
const hour = 3_600_000;
const now = Math.floor(Date.now() / 60_000) * 60_000;
const start = new Date(now - 3 * hour);
const periodEnd = new Date(start.getTime() + 24 * hour);
const ago = (minutes: number) => new Date(now - minutes * 60_000).toISOString();

async function createPlan(code: string, metricCode: string, unitPrice: string, settings: Record<string, unknown>): Promise<string> {
  const plan = await api.http.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1D', flat_fee: '0', charges: [{ metric_code: metricCode, price: { model: 'per_unit', unitPrice } }] });
  expect(plan.status).toBe(201);
  // The API has no field for these settings: plans get them by hand.
  await db('plans').where({ id: plan.json.id }).update({ settings: JSON.stringify({ ...plan.json.settings, ...settings }) });
  return plan.json.id;
}

beforeEach(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  for (const [code, type] of [['ob_seats', 'ob.seat'], ['ob_calls', 'ob.call']]) {
    expect((await api.http.call('POST', '/v1/metrics', { code, name: code, event_type: type, aggregation: 'sum', property: 'n' })).status).toBe(201);
  }
  const customer = await insertCustomer(db, { external_id: 'ob-acme' });
  for (const [name, planId] of [
    ['seats', await createPlan('ob-seats', 'ob_seats', '2.00', { usageWhilePaused: 'reject', hardCap: '10.00' })],
    ['calls', await createPlan('ob-calls', 'ob_calls', '0.50', {})],
  ] as const) {
    const { row } = await insertSubscription(db, customer, await db('plans').where({ id: planId }).first(), start);
    await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: start, current_period_end: periodEnd });
    ids[name] = row.id;
  }
});

afterEach(async () => {
  await api?.close();
  await db?.destroy();
});

const event = (id: string, type: string, timestamp: string, n: number) => ({ id, customer: 'ob-acme', type, timestamp, properties: { n } });
const send = async (...events: object[]) => (await api.http.call('POST', '/v1/events', { events })).json;
const codes = (answer: { errors: { index: number; code: string }[] }) => answer.errors.map(({ index, code }) => [index, code]);

async function callsBilledByB(): Promise<string> {
  const preview = await api.http.call('GET', `/v1/subscriptions/${ids.calls}/usage`);
  expect(preview.status).toBe(200);
  return preview.json.projected.usage_total;
}

test("a pause of one subscription refuses its own usage, not the usage another subscription of the customer prices", async () => {
  await mirrorSubscriptionStatus(db, { subscriptionId: ids.seats, status: 'paused', at: ago(60), reason: 'paused', trialEnd: null, usageBlocked: true });
  const answer = await send(event('calls-1', 'ob.call', ago(30), 40), event('seats-1', 'ob.seat', ago(30), 1), event('seats-0', 'ob.seat', ago(90), 2));
  expect({ accepted: answer.accepted, errors: codes(answer) }).toEqual({ accepted: 2, errors: [[1, 'usage_blocked']] });
  expect(await callsBilledByB()).toBe('20.00');
});

test('a cap of one subscription refuses its own usage, not the usage another subscription of the customer prices', async () => {
  // 5 seats x 2.00 = 10.00: A's cap for its period.
  expect(await send(event('seats-1', 'ob.seat', ago(120), 5))).toMatchObject({ accepted: 1 });
  const checked = await createSpendingActivities(db).checkSpending({ subscriptionId: ids.seats, from: start.toISOString(), at: ago(0), periodEnd: periodEnd.toISOString() });
  expect(checked.capped).toBe(true);
  const answer = await send(event('calls-1', 'ob.call', ago(30), 40), event('seats-2', 'ob.seat', ago(30), 1));
  expect({ accepted: answer.accepted, errors: codes(answer) }).toEqual({ accepted: 1, errors: [[1, 'usage_cap_reached']] });
  expect(await callsBilledByB()).toBe('20.00');
});
