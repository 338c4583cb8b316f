/**
 * A plan change scheduled for the period's end is recorded on the subscription's row for the metered-overlap check
 * (store/metered-overlaps.ts) even when the workflow's answer is lost: the workflow may have taken it, and a missed
 * change would let two subscriptions of the customer price one event type from the boundary on. A retry with the same
 * Idempotency-Key records the instant the workflow answers; a refusal writes nothing and keeps an earlier change.
 *
 * Postgres and the API, with a Temporal client whose updates answer as each test says.
 */
import type { Client } from '@temporalio/client';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { TemporalDeadlinePassed } from '../../api/temporal-deadline';
import type { PlanRow } from '../../store/catalog';
import type { CustomerRow } from '../../store/customers';
import type { Database } from '../../store/database';
import type { SubscriptionRow } from '../../store/subscriptions';
import type { PlanChangeResult } from '../../workflows/definitions';
import { serveApiOnly, ApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
/** How the workflow answers the next update: a result, or the error the client sees. */
let answer: () => PlanChangeResult = () => {
  throw new Error('no answer set');
};

const temporal = {
  withDeadline: (_deadline: number, call: () => Promise<unknown>) => call(),
  workflow: {
    start: async () => ({}),
    getHandle: () => ({ executeUpdate: async () => answer() }),
  },
} as unknown as Client;

let other: PlanRow;
let callsB: PlanRow;
let callsC: PlanRow;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert([
    { code: 'la_calls', name: 'Calls', event_type: 'la.call', aggregation: 'count' },
    { code: 'la_other', name: 'Other', event_type: 'la.other', aggregation: 'count' },
  ]);
  const plan = (code: string, metricCode: string) => insertPlan(db, { code, billing_interval: 'P1M', flat_fee: '0', charges: [{ metricCode, price: { model: 'per_unit', unitPrice: '1.00' } }] as never });
  other = await plan('la-other', 'la_other');
  callsB = await plan('la-calls-b', 'la_calls');
  callsC = await plan('la-calls-c', 'la_calls');
  api = await serveApiOnly(db, { temporal, headers: (await createTestApiKey(db, 'admin')).headers });
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const DAY = 24 * 3600 * 1000;

async function activeOnOther(customer: CustomerRow): Promise<SubscriptionRow> {
  const start = new Date(Math.floor(Date.now() / 1000) * 1000 - DAY);
  const [row] = await db<SubscriptionRow>('subscriptions')
    .insert({ customer_id: customer.id, plan_id: other.id, status: 'active', workflow_id: `direct:${customer.external_id}`, start_at: start, current_period_start: start, current_period_end: new Date(start.getTime() + 30 * DAY) })
    .returning('*');
  return row;
}

const scheduled = async (id: string) => {
  const row = (await db<SubscriptionRow>('subscriptions').where({ id }).first())!;
  return [row.scheduled_change_plan_id, row.scheduled_change_at];
};

const lost = (): never => {
  throw new TemporalDeadlinePassed(5000, new Error('cancelled'));
};

test('an answer lost after the workflow may have scheduled the change: recorded all the same, and a retry records the answer', async () => {
  const customer = await insertCustomer(db, { external_id: 'la-lost' });
  const s1 = await activeOnOther(customer);
  const change = { plan_code: callsB.code, effective: 'period_end' };

  answer = lost;
  const first = await api.http.call('POST', `/v1/subscriptions/${s1.id}/plan-change`, change, { 'Idempotency-Key': 'la-lost-1' });
  const s2 = await api.http.call('POST', '/v1/subscriptions', { customer_id: customer.id, plan_code: callsC.code });
  expect([first.status, first.json.code, s2.status, s2.json.conflicting_subscription_id, await scheduled(s1.id)]).toEqual([503, 'temporal_unavailable', 409, s1.id, [callsB.id, s1.current_period_end]]);

  // The workflow had taken it, in its period's end (the row showed an older one): the retry records that instant.
  const effectiveAt = new Date(s1.current_period_end!.getTime() + DAY).toISOString();
  answer = () => ({ effective: 'period_end', effectiveAt, planCode: callsB.code, invoice: null });
  const retry = await api.http.call('POST', `/v1/subscriptions/${s1.id}/plan-change`, change, { 'Idempotency-Key': 'la-lost-1' });
  expect([retry.status, await scheduled(s1.id)]).toEqual([200, [callsB.id, new Date(effectiveAt)]]);
});

test('a refused change writes nothing: the change scheduled before it still counts', async () => {
  const customer = await insertCustomer(db, { external_id: 'la-refused' });
  const s1 = await activeOnOther(customer);
  answer = () => ({ effective: 'period_end', effectiveAt: s1.current_period_end!.toISOString(), planCode: callsB.code, invoice: null });
  expect((await api.http.call('POST', `/v1/subscriptions/${s1.id}/plan-change`, { plan_code: callsB.code, effective: 'period_end' })).status).toBe(200);

  answer = () => {
    throw new WorkflowUpdateFailedError('refused', new Error('subscription_not_active'));
  };
  const refused = await api.http.call('POST', `/v1/subscriptions/${s1.id}/plan-change`, { plan_code: callsC.code, effective: 'period_end' });

  expect([refused.status, refused.json.code, await scheduled(s1.id)]).toEqual([409, 'subscription_not_active', [callsB.id, s1.current_period_end]]);
});
