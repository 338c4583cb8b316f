/**
 * The hard cap (set by the spending check for a period whose spend reached it) refuses exactly the usage stamped in
 * a capped stretch, whenever it arrives. Before, it was judged by the request's arrival against
 * `usage_capped_until`, which keeps only the latest cap:
 *
 *   period P0 [T-2h, T), capped (spend reached 50.00 of 50.00)  |  P1 [T, T+2h), its usage grace window still open
 *   - sent at T+40m, an event stamped in P0: `usage_capped_until` (T) was past, so it was accepted, and P0's close
 *     (or a re-rating with late usage) billed it above the cap the customer was promised: 5 calls, 5.00 over.
 *   - P1 capped in turn (until T+2h): an event stamped in P0 was refused as `usage_cap_reached`, although P0 was not
 *     capped and its close would bill it; a client drops a 4xx, so the usage was lost.
 *   - P1 capped, then an immediate plan change at X (T+30m) to a plan without a cap or with a higher one lifted the
 *     cap: every event was accepted again, those stamped in P1 before X too, billed above the cap P1 stood at then.
 *     The lift now ends the capped stretch at X: before it refused, from it accepted.
 *
 * The capped stretches are kept (migration 0730: from the capped period's start to its end, or to the lift).
 * API, the spending check's activity and a real Postgres.
 */
import { createSpendingActivities } from '../../activities/spending';
import type { Database } from '../../store/database';
import { recordPlanChangeOnce } from '../../store/plan-changes';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let subscriptionId: string;
let planId: string;
// T: the start of the open period P1, 40 minutes ago; P0 is the two hours before it.
const t = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 40 * 60_000);
const p0Start = new Date(t.getTime() - 7_200_000);
const p1End = new Date(t.getTime() + 7_200_000);
const minutesAfterT = (minutes: number) => new Date(t.getTime() + minutes * 60_000).toISOString();
const inP0 = minutesAfterT(-10);

async function createPlan(code: string, hardCap: string | null): Promise<string> {
  const plan = await api.http.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'PT2H', flat_fee: '0', charges: [{ metric_code: 'cja_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] });
  expect(plan.status).toBe(201);
  // The API has no field for a hard cap: plans get it in their settings.
  if (hardCap !== null) await db('plans').where({ id: plan.json.id }).update({ settings: JSON.stringify({ ...plan.json.settings, hardCap }) });
  return plan.json.id;
}

beforeEach(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'cja_calls', name: 'Calls', event_type: 'cja.call', aggregation: 'sum', property: 'n' })).status).toBe(201);
  planId = await createPlan('cja', '50.00');
  const customer = await insertCustomer(db, { external_id: 'cja' });
  const { row } = await insertSubscription(db, customer, await db('plans').where({ id: planId }).first(), p0Start);
  subscriptionId = row.id;
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: t, current_period_end: p1End });
});

afterEach(async () => {
  await api?.close();
  await db?.destroy();
});

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'cja', type: 'cja.call', timestamp, properties: { n } });
const late = calls('late-p0', inP0, 5);
const send = async (...events: object[]) => (await api.http.call('POST', '/v1/events', { events })).json;

/** 50 calls (50.00, the cap) stamped at `at`, then the workflow's spending check for the period [from, periodEnd). */
async function spendTheCap(from: Date, at: string, periodEnd: Date): Promise<void> {
  expect(await send(calls(`cap-${at}`, at, 50))).toMatchObject({ accepted: 1 });
  const checked = await createSpendingActivities(db).checkSpending({ subscriptionId, from: from.toISOString(), at: new Date().toISOString(), periodEnd: periodEnd.toISOString() });
  expect(checked.capped).toBe(true);
}

test('an event stamped in a capped period, sent after that period ended, is refused', async () => {
  await spendTheCap(p0Start, minutesAfterT(-100), t);
  expect(await send(late, calls('in-p1', minutesAfterT(5), 1))).toMatchObject({ accepted: 1, errors: [{ index: 0, code: 'usage_cap_reached' }] });
});

test('an event stamped in an uncapped period is not refused by the cap of the next one', async () => {
  await spendTheCap(t, minutesAfterT(1), p1End);
  expect(await send(late, calls('in-p1', minutesAfterT(5), 1))).toMatchObject({ accepted: 1, errors: [{ index: 1, code: 'usage_cap_reached' }] });
});

test.each([
  ['a plan without a cap', null],
  ['a plan with a higher cap', '500.00'],
])('a plan change to %s lifts the cap at its instant: usage stamped before it in the capped period stays refused', async (_, hardCap) => {
  await spendTheCap(t, minutesAfterT(1), p1End);
  const newPlanId = await createPlan(`cja-after-${hardCap ?? 'none'}`, hardCap);
  const change = await recordPlanChangeOnce(db, { subscriptionId, requestKey: 'lift', changeAt: new Date(minutesAfterT(30)), oldPlanId: planId, newPlanId, requestedBy: 'test' });
  await db('subscriptions').where({ id: subscriptionId }).update({ plan_id: newPlanId });
  expect(change.change_at).toEqual(new Date(minutesAfterT(30)));
  const answer = await send(calls('before-lift', minutesAfterT(20), 3), calls('after-lift', minutesAfterT(31), 4), calls('at-lift', minutesAfterT(30), 2));
  expect({ accepted: answer.accepted, errors: answer.errors.map((error: { index: number; code: string }) => [error.index, error.code]) }).toEqual({ accepted: 2, errors: [[0, 'usage_cap_reached']] });
});
