/**
 * One customer's usage of an event type is billed by at most one subscription at any instant (store/metered-overlaps.ts):
 * events name a customer, and the first close of either of two subscriptions pricing one event type claimed it. So
 * a subscription, an import row, a plan change or a win-back restart that would make two of a customer's
 * subscriptions price one event type over one stretch is refused 409 `metered_usage_overlap`, naming the other
 * subscription and the shared event types, and nothing is written; two creations racing for one customer cannot both
 * pass (the customer's row lock).
 *
 * Postgres and the API, with a Temporal client that records what the API asks of it and starts nothing.
 */
import type { Client } from '@temporalio/client';
import type { PlanRow } from '../../store/catalog';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import type { SubscriptionRow } from '../../store/subscriptions';
import { serveApiOnly, ApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
const started: string[] = [];
const addressed: string[] = [];

/** Starts "succeed" and nothing runs; any other call to a workflow fails (none is expected before a refusal). */
const recordingTemporal = {
  withDeadline: (_deadline: number, call: () => Promise<unknown>) => call(),
  workflow: {
    start: async (_type: string, options: { workflowId: string }) => {
      started.push(options.workflowId);
      return {};
    },
    getHandle: (workflowId: string) => {
      addressed.push(workflowId);
      throw new Error(`no workflow ${workflowId} in this test`);
    },
  },
} as unknown as Client;

let seats: PlanRow;
let cheaperSeats: PlanRow;
let apiCalls: PlanRow;
let seatsAndCalls: PlanRow;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert([
    { code: 'mo_seats', name: 'Seats', event_type: 'mo.seat', aggregation: 'prorated_sum', property: 'delta', allow_negative: true },
    { code: 'mo_calls', name: 'Calls', event_type: 'mo.call', aggregation: 'count' },
  ]);
  const plan = (code: string, charges: { metricCode: string; unitPrice: string }[]) =>
    insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '0', charges: charges.map(({ metricCode, unitPrice }) => ({ metricCode, price: { model: 'per_unit', unitPrice } })) as never });
  seats = await plan('mo-seats', [{ metricCode: 'mo_seats', unitPrice: '10.00' }]);
  cheaperSeats = await plan('mo-seats-cheaper', [{ metricCode: 'mo_seats', unitPrice: '5.00' }]);
  apiCalls = await plan('mo-calls', [{ metricCode: 'mo_calls', unitPrice: '0.01' }]);
  seatsAndCalls = await plan('mo-seats-and-calls', [
    { metricCode: 'mo_calls', unitPrice: '0.02' },
    { metricCode: 'mo_seats', unitPrice: '8.00' },
  ]);
  api = await serveApiOnly(db, { temporal: recordingTemporal, headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

beforeEach(() => {
  started.length = 0;
  addressed.length = 0;
});

const DAY = 24 * 3600 * 1000;

/** A subscription as its workflow leaves the row: active in a month from `start`. */
async function storedSubscription(customer: CustomerRow, plan: PlanRow, overrides: Partial<SubscriptionRow> = {}): Promise<SubscriptionRow> {
  const start = new Date(Math.floor(Date.now() / 1000) * 1000 - DAY);
  const [row] = await db<SubscriptionRow>('subscriptions')
    .insert({
      customer_id: customer.id,
      plan_id: plan.id,
      status: 'active',
      workflow_id: `direct:${customer.external_id}:${plan.code}`,
      start_at: start,
      current_period_start: start,
      current_period_end: new Date(start.getTime() + 30 * DAY),
      ...overrides,
    })
    .returning('*');
  return row;
}

const subscriptionsOf = async (customer: CustomerRow): Promise<number> => Number((await db('subscriptions').where({ customer_id: customer.id }).count<{ count: string }[]>('* as count'))[0].count);

test('a second subscription pricing an event type the first prices is refused, naming it and the event types, and nothing is written', async () => {
  const customer = await insertCustomer(db, { external_id: 'mo-second' });
  const first = await storedSubscription(customer, seats);

  const response = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: seatsAndCalls.code });

  expect(response.status).toBe(409);
  expect(response.type).toContain('application/problem+json');
  expect(response.json).toMatchObject({ code: 'metered_usage_overlap', conflicting_subscription_id: first.id, event_types: ['mo.seat'] });
  expect(response.json.detail).toContain(first.id);
  expect(await subscriptionsOf(customer)).toBe(1);
  expect(started).toEqual([]);
});

test('every overlapping status refuses: trialing, paused, past due, suspended, scheduled to start later, pending cancellation before its end', async () => {
  const later = new Date(Date.now() + 20 * DAY);
  const standings: Partial<SubscriptionRow>[] = [
    { status: 'trialing' },
    { status: 'paused', usage_blocked: true },
    { status: 'past_due' },
    { status: 'suspended', usage_blocked: true },
    { status: 'scheduled', start_at: later, current_period_start: null, current_period_end: null },
    { status: 'pending_cancellation' },
    { status: 'needs_attention' },
  ];
  for (const [index, standing] of standings.entries()) {
    const customer = await insertCustomer(db, { external_id: `mo-standing-${index}` });
    const first = await storedSubscription(customer, seats, standing);
    const response = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: cheaperSeats.code });
    expect([standing.status, response.status, response.json.conflicting_subscription_id]).toEqual([standing.status, 409, first.id]);
  }
  expect(started).toEqual([]);
});

test('a subscription pricing other event types, or starting where the other one stops billing usage, is accepted', async () => {
  const customer = await insertCustomer(db, { external_id: 'mo-disjoint' });
  const first = await storedSubscription(customer, seats, { status: 'pending_cancellation' });
  const end = first.current_period_end!;

  const calls = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: apiCalls.code });
  const beforeTheEnd = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: cheaperSeats.code, start_at: new Date(end.getTime() - 1000).toISOString() });
  const atTheEnd = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: cheaperSeats.code, start_at: end.toISOString() });

  expect([calls.status, beforeTheEnd.status, beforeTheEnd.json.code, atTheEnd.status]).toEqual([201, 409, 'metered_usage_overlap', 201]);
  expect(started).toHaveLength(2);
});

test('a canceled subscription prices its event types up to its usage end only', async () => {
  const customer = await insertCustomer(db, { external_id: 'mo-canceled' });
  const endedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 1000);
  await storedSubscription(customer, seats, { status: 'canceled', canceled_at: endedAt, usage_ends_at: endedAt });

  const response = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: cheaperSeats.code });

  expect(response.status).toBe(201);
});

test('two creations racing for one customer: exactly one is accepted', async () => {
  for (let round = 0; round < 5; round += 1) {
    const customer = await insertCustomer(db, { external_id: `mo-race-${round}` });
    const responses = await Promise.all([
      api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: seats.code }),
      api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: cheaperSeats.code }),
    ]);
    expect(responses.map((response) => response.status).sort()).toEqual([201, 409]);
    const accepted = responses.find((response) => response.status === 201)!;
    expect(responses.find((response) => response.status === 409)!.json.conflicting_subscription_id).toBe(accepted.json.id);
    expect(await subscriptionsOf(customer)).toBe(1);
  }
});

test('a plan change to a plan pricing what another subscription of the customer prices is refused before the workflow is asked', async () => {
  const customer = await insertCustomer(db, { external_id: 'mo-plan-change' });
  const seated = await storedSubscription(customer, seats);
  const calling = await storedSubscription(customer, apiCalls);

  for (const effective of ['immediate', 'period_end']) {
    const response = await api.http.call('POST', `/v1/subscriptions/${calling.id}/plan-change`, { plan_code: seatsAndCalls.code, effective });
    expect([effective, response.status, response.json.code, response.json.conflicting_subscription_id, response.json.event_types]).toEqual([effective, 409, 'metered_usage_overlap', seated.id, ['mo.seat']]);
  }
  expect(addressed).toEqual([]);
  expect((await db<SubscriptionRow>('subscriptions').where({ id: calling.id }).first())!.plan_id).toBe(apiCalls.id);
});

test('a win-back restart is refused when another subscription of the customer has priced its event types since it ended', async () => {
  const customer = await insertCustomer(db, { external_id: 'mo-win-back' });
  const endedAt = new Date(Date.now() - 1000);
  const ended = await storedSubscription(customer, seats, { status: 'canceled', canceled_at: endedAt, usage_ends_at: endedAt });
  const successor = await storedSubscription(customer, cheaperSeats);

  const response = await api.http.call('POST', `/v1/subscriptions/${ended.id}/win-back/accept`);

  expect([response.status, response.json.code, response.json.conflicting_subscription_id]).toEqual([409, 'metered_usage_overlap', successor.id]);
  expect(addressed).toEqual([]);
});

test('the import refuses a row overlapping a stored subscription or an earlier row of the batch, row by row', async () => {
  const customer = await insertCustomer(db, { external_id: 'mo-import' });
  const stored = await storedSubscription(customer, seats);
  const other = await insertCustomer(db, { external_id: 'mo-import-other' });
  const now = new Date();
  const periodStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString();
  const row = (externalId: string, customerExternalId: string, planCode: string) => ({ external_id: externalId, customer_external_id: customerExternalId, plan_code: planCode, billing_anchor: periodStart, current_period_start: periodStart });

  const response = await api.http.call('POST', '/v1/subscriptions/import', {
    rows: [row('mo-imp-1', 'mo-import', cheaperSeats.code), row('mo-imp-2', 'mo-import', apiCalls.code), row('mo-imp-3', 'mo-import-other', apiCalls.code), row('mo-imp-4', 'mo-import-other', seatsAndCalls.code)],
  });

  expect(response.status).toBe(200);
  expect(response.json.rows.map((line: { status: string; code?: string }) => [line.status, line.code])).toEqual([
    ['rejected', 'metered_usage_overlap'],
    ['created', undefined],
    ['created', undefined],
    ['rejected', 'metered_usage_overlap'],
  ]);
  expect(response.json.rows[0].detail).toContain(stored.id);
  expect(response.json.rows[3].detail).toContain(response.json.rows[2].subscription_id);
  expect(started).toHaveLength(2);
  expect([await subscriptionsOf(customer), await subscriptionsOf(other)]).toEqual([2, 1]);
});
