/**
 * Events name a customer, and at most one subscription of a customer prices an event type at an instant (docs/api.md
 * "One subscription per event type"). A hard feature limit (docs/wallets.md) counted and refused every event of its
 * metric's type stamped in its subscription's period, whichever subscription priced it:
 *
 *   acme, both subscriptions from S (3 hours ago), daily periods [S, S + 1 day)
 *   1. A on "storage" (prices lo.gb; declares calls limit 3 on lo.call), B on "calls" (prices lo.call at 0.50)
 *      5 calls now: A's limit refused 2 of B's calls (B billed 1.50 instead of 2.50)
 *   2. A on "old-calls" (prices lo.call at 1.00) until C (1 hour ago), then "storage";
 *      B on "seats" (prices lo.seat) until C, then "calls-limited" (prices lo.call at 0.50, calls limit 5)
 *      A's 4 calls stamped before C count against B's limit: of B's 5 calls after C, 4 were refused (2.00 lost),
 *      and A's late calls stamped before C, sent once B's limit is used, were refused (1.00 each lost)
 *   3. as 2., but the subscription pricing lo.call until C was canceled at C: the same 4 of 5 calls refused
 *
 * Now a limit counts and judges only the events its own subscription prices at their time, or that no subscription
 * prices then (they bill nothing: a plan's limit on a metric no plan charges still holds), as blocks and caps do.
 * The entitlement answer counts the same events. API and a real Postgres.
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let customerId: string;
const hour = 3_600_000;
const now = Math.floor(Date.now() / 60_000) * 60_000;
const start = new Date(now - 3 * hour);
const periodEnd = new Date(start.getTime() + 24 * hour);
const changeAt = new Date(now - hour);
const ago = (minutes: number) => new Date(now - minutes * 60_000).toISOString();

const callsLimit = (limit: string) => [{ code: 'calls', kind: 'metered', metric_code: 'lo_calls', limit }];

async function createPlan(code: string, charges: [string, string][], features: object[] = []): Promise<string> {
  const body = { code, name: code, currency: 'USD', billing_interval: 'P1D', flat_fee: '0', charges: charges.map(([metric_code, unitPrice]) => ({ metric_code, price: { model: 'per_unit', unitPrice } })), ...(features.length ? { features } : {}) };
  const plan = await api.http.call('POST', '/v1/plans', body);
  expect(plan.status).toBe(201);
  return plan.json.id;
}

/** A subscription in its first period on `planId`, after an immediate change at C from `before` when given. */
async function subscribe(planId: string, before?: string): Promise<string> {
  const customer = await db('customers').where({ id: customerId }).first();
  const { row } = await insertSubscription(db, customer, await db('plans').where({ id: planId }).first(), start);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: start, current_period_end: periodEnd });
  if (before) {
    await db('plan_changes').insert({ subscription_id: row.id, request_key: `change-${row.id}`, change_at: changeAt, old_plan_id: before, new_plan_id: planId, requested_by: 'test' });
  }
  return row.id;
}

beforeEach(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  for (const [code, type] of [['lo_gb', 'lo.gb'], ['lo_calls', 'lo.call'], ['lo_seats', 'lo.seat'], ['lo_exports', 'lo.export']]) {
    expect((await api.http.call('POST', '/v1/metrics', { code, name: code, event_type: type, aggregation: 'count' })).status).toBe(201);
  }
  customerId = (await insertCustomer(db, { external_id: 'lo-acme' })).id;
});

afterEach(async () => {
  await api?.close();
  await db?.destroy();
});

const event = (id: string, type: string, timestamp: string) => ({ id, customer: 'lo-acme', type, timestamp, properties: {} });
const calls = (prefix: string, count: number, timestamp: string) => Array.from({ length: count }, (_, i) => event(`${prefix}-${i}`, 'lo.call', timestamp));
const send = async (...events: object[]) => (await api.http.call('POST', '/v1/events', { events })).json;
const codes = (answer: { errors: { index: number; code: string }[] }) => answer.errors.map(({ index, code }) => [index, code]);
const entitlement = async (feature: string) => (await api.http.call('GET', `/v1/customers/${customerId}/entitlements/${feature}`)).json;

test("a limit of one subscription neither counts nor refuses the events another subscription of the customer prices", async () => {
  await subscribe(await createPlan('lo-storage', [['lo_gb', '0.10']], callsLimit('3')));
  const callsSubscription = await subscribe(await createPlan('lo-calls', [['lo_calls', '0.50']]));
  const answer = await send(...calls('b', 5, ago(30)));
  expect({ accepted: answer.accepted, errors: codes(answer) }).toEqual({ accepted: 5, errors: [] });
  const preview = await api.http.call('GET', `/v1/subscriptions/${callsSubscription}/usage`);
  expect(preview.json.projected.usage_total).toBe('2.50');
  // A's limit is on calls no subscription of A's bills: its usage is the calls it would judge, none of B's.
  expect(await entitlement('calls')).toMatchObject({ usage: '0', limit: '3', has_access: true });
});

test("a limit on a metric no subscription of the customer prices still holds, with several subscriptions", async () => {
  await subscribe(await createPlan('lo-storage', [['lo_gb', '0.10']], [{ code: 'exports', kind: 'metered', metric_code: 'lo_exports', limit: '2' }]));
  await subscribe(await createPlan('lo-calls', [['lo_calls', '0.50']]));
  const exports = [1, 2, 3].map((i) => event(`x-${i}`, 'lo.export', ago(30)));
  const answer = await send(...exports);
  expect({ accepted: answer.accepted, errors: codes(answer) }).toEqual({ accepted: 2, errors: [[2, 'entitlement_limit_reached']] });
  expect(await entitlement('exports')).toMatchObject({ usage: '2', limit: '2', has_access: false });
});

test("after plan changes, a limit counts only the usage of its own subscription's plan, not the plan another subscription moved away from", async () => {
  const oldCalls = await createPlan('lo-old-calls', [['lo_calls', '1.00']]);
  await subscribe(await createPlan('lo-storage', [['lo_gb', '0.10']]), oldCalls);
  const seats = await createPlan('lo-seats', [['lo_seats', '2.00']]);
  await subscribe(await createPlan('lo-calls-limited', [['lo_calls', '0.50']], callsLimit('5')), seats);

  // A's calls, stamped while A's old plan priced them (no limit there).
  expect(codes(await send(...calls('a', 4, ago(90))))).toEqual([]);
  // B's calls after C: B's limit of 5 is B's own.
  const answer = await send(...calls('b', 5, ago(30)));
  expect({ accepted: answer.accepted, errors: codes(answer) }).toEqual({ accepted: 5, errors: [] });
  expect(await entitlement('calls')).toMatchObject({ usage: '5', limit: '5', has_access: false });
  // B's limit is reached; A's late calls from before C are still A's, and B's next one is refused.
  const late = await send(...calls('a-late', 2, ago(100)), event('b-6', 'lo.call', ago(20)));
  expect({ accepted: late.accepted, errors: codes(late) }).toEqual({ accepted: 2, errors: [[2, 'entitlement_limit_reached']] });
});

test("a limit does not count the usage of a subscription that ended earlier in its period, and the answer agrees", async () => {
  const ended = await subscribe(await createPlan('lo-old-calls', [['lo_calls', '1.00']]));
  // B ended at C: its calls stamped before C are its own (its closing invoice bills them).
  await db('subscriptions').where({ id: ended }).update({ status: 'canceled', canceled_at: changeAt, usage_ends_at: changeAt });
  await subscribe(await createPlan('lo-calls-limited', [['lo_calls', '0.50']], callsLimit('5')), await createPlan('lo-seats', [['lo_seats', '2.00']]));

  expect(codes(await send(...calls('ended', 4, ago(90))))).toEqual([]);
  const answer = await send(...calls('a', 5, ago(30)));
  expect({ accepted: answer.accepted, errors: codes(answer) }).toEqual({ accepted: 5, errors: [] });
  expect(await entitlement('calls')).toMatchObject({ usage: '5', limit: '5', has_access: false });
});
