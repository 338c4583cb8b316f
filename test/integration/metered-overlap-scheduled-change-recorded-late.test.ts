/**
 * The plan-change route records a change scheduled for the period's end on the row after the workflow answered
 * (store/metered-overlaps.ts `recordScheduledChange`). A cancellation takes no customer lock, and the scheduled plan's
 * switch at the boundary is an activity: either can reach the row between the answer and that write. Before, the write
 * went through all the same, and the row claimed a change its subscription could no longer take.
 *
 *   sr-other prices sr.other (win-back offer a day after the end); sr-calls-b and sr-calls-c price sr.calls (P1M, grace PT1H)
 *   2035-01-01 S1 on sr-other | Jan 10 S1 schedules sr-calls-b for Feb 1: the workflow answers, the route's write is held
 *   Jan 10 S1 canceled now | 02:00 the row shows canceled, nothing scheduled | the held write goes on (200)
 *   Jan 12 S1 accepts its win-back offer: restarted on sr-other, its workflow holds no scheduled change | S2 on sr-calls-c
 *   expected: the canceled row claims nothing; S2 accepted (201)
 *   before:   the canceled row claimed sr-calls-b from Feb 1, and after the restart S2 was refused 409
 *             metered_usage_overlap naming S1 for sr.calls, a plan S1 never moved to
 *
 * API, workflow, time-skipping server and a real Postgres; the hook holds the route between the answer and its write.
 */
import type { Client } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import type { SubscriptionRow } from '../../store/subscriptions';
import { changePlanUpdate } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertPlan } from '../support/fixtures';

/** While set, a plan-change answer reaches the route only once this resolves (the workflow has answered by then). */
let holdPlanChangeAnswer: (() => Promise<void>) | null = null;

/** The API's Temporal client, with every plan change's answer passed through `holdPlanChangeAnswer`. */
function holdingPlanChangeAnswers(client: Client): Client {
  const bound = <T extends object>(target: T, prop: string | symbol): unknown => {
    const value = Reflect.get(target, prop, target) as unknown;
    return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
  };
  const getHandle: typeof client.workflow.getHandle = (...args) => {
    const handle = client.workflow.getHandle(...args);
    const askWorkflow = handle.executeUpdate.bind(handle) as (definition: unknown, options: unknown) => Promise<unknown>;
    const executeUpdate = async (definition: UpdateDefinition<unknown, unknown[]> | string, options: unknown): Promise<unknown> => {
      const answer = await askWorkflow(definition, options);
      const hold = holdPlanChangeAnswer;
      if (hold && (typeof definition === 'string' ? definition : definition.name) === changePlanUpdate.name) await hold();
      return answer;
    };
    return Object.assign(Object.create(handle) as typeof handle, { executeUpdate });
  };
  const workflow = new Proxy(client.workflow, { get: (target, prop) => (prop === 'getHandle' ? getHandle : bound(target, prop)) });
  return new Proxy(client, { get: (target, prop) => (prop === 'workflow' ? workflow : bound(target, prop)) });
}

const stack = useApiStack({ apiTemporal: holdingPlanChangeAnswers });

beforeAll(async () => {
  for (const [code, type] of [['sr_calls', 'sr.calls'], ['sr_other', 'sr.other']]) {
    expect((await stack.api.call('POST', '/v1/metrics', { code, name: code, event_type: type, aggregation: 'count' })).status).toBe(201);
  }
  for (const [code, unitPrice] of [['sr-calls-b', '1.00'], ['sr-calls-c', '2.00']]) {
    const charges = [{ metric_code: 'sr_calls', price: { model: 'per_unit', unitPrice } }];
    expect((await stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges })).status).toBe(201);
  }
  const settings = { winBackOffer: { sendAfter: 'P1D', expiresAfter: 'P7D' }, usageGracePeriod: 'PT1H' };
  await insertPlan(stack.db, { code: 'sr-other', billing_interval: 'P1M', flat_fee: '0', settings, charges: [{ metricCode: 'sr_other', price: { model: 'per_unit', unitPrice: '1.00' } }] as never });
});

afterEach(() => {
  holdPlanChangeAnswer = null;
});

async function customer(externalId: string): Promise<string> {
  const created = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  expect(created.status).toBe(201);
  return created.json.id;
}

const subscribe = (customerId: string, planCode: string, startAt?: string) =>
  stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: planCode, ...(startAt ? { start_at: startAt } : {}) });

const rowOf = async (id: string) => (await stack.db<SubscriptionRow>('subscriptions').where({ id }).first())!;

const scheduledOnRow = async (id: string) => {
  const row = await rowOf(id);
  return { status: row.status, planId: row.scheduled_change_plan_id, at: row.scheduled_change_at?.toISOString() ?? null };
};

/**
 * Asks S1's change to sr-calls-b at its period's end and holds the route once the workflow answered: `meanwhile`
 * runs then, before the route writes its record. Returns the route's answer.
 */
async function scheduleWhile(subscriptionId: string, meanwhile: () => Promise<void>) {
  let answered!: () => void;
  const workflowAnswered = new Promise<void>((resolve) => (answered = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  holdPlanChangeAnswer = () => {
    answered();
    return released;
  };
  const scheduling = stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'sr-calls-b', effective: 'period_end' });
  await workflowAnswered;
  try {
    await meanwhile();
  } finally {
    release();
  }
  return scheduling;
}

test('a change recorded after a cancellation ended the subscription does not stand: after a win-back nothing is refused for it', async () => {
  const customerId = await customer('sr-canceled');
  const s1 = await subscribe(customerId, 'sr-other', '2035-01-01T00:00:00Z');
  expect(s1.status).toBe(201);
  await stack.skipTo('2035-01-10T00:00:00Z');

  const scheduled = await scheduleWhile(s1.json.id, async () => {
    expect((await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/cancel`, { at: 'now', reason: 'trying calls' })).status).toBe(200);
    await stack.skipTo('2035-01-10T02:00:00Z');
    await eventually(async () => (await rowOf(s1.json.id)).status === 'canceled', 'S1 canceled');
  });
  const afterTheWrite = await scheduledOnRow(s1.json.id);

  await stack.skipTo('2035-01-12T00:00:00Z');
  await eventually(async () => stack.db('customer_offers').where({ subscription_id: s1.json.id, kind: 'win_back' }).first(), 'the win-back offer');
  const restarted = await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/win-back/accept`);
  await eventually(async () => (await rowOf(s1.json.id)).status === 'active', 'S1 restarted');
  const s2 = await subscribe(customerId, 'sr-calls-c');

  expect({
    scheduled: [scheduled.status, scheduled.json.effective_at],
    afterTheWrite,
    restarted: restarted.status,
    s2: [s2.status, s2.json.code, s2.json.conflicting_subscription_id, s2.json.event_types],
  }).toEqual({
    scheduled: [200, '2035-02-01T00:00:00.000Z'],
    afterTheWrite: { status: 'canceled', planId: null, at: null },
    restarted: 200,
    s2: [201, undefined, undefined, undefined],
  });
});

test('a change recorded after the boundary applied it does not stand: the row prices by the new plan, with nothing scheduled', async () => {
  // 2035-03-01 S1 on sr-other | Mar 20 S1 schedules sr-calls-b for Apr 1, the write held | Apr 1 02:00 the row shows
  // sr-calls-b in force from Apr 1 | the held write goes on: the row must not claim a change still to come.
  const customerId = await customer('sr-applied');
  const s1 = await subscribe(customerId, 'sr-other', '2035-03-01T00:00:00Z');
  expect(s1.status).toBe(201);
  await stack.skipTo('2035-03-20T00:00:00Z');
  const callsB = (await stack.db('plans').where({ code: 'sr-calls-b' }).first('id')).id as string;

  const scheduled = await scheduleWhile(s1.json.id, async () => {
    await stack.skipTo('2035-04-01T02:00:00Z');
    await eventually(async () => (await rowOf(s1.json.id)).plan_id === callsB, 'S1 switched to sr-calls-b');
  });
  const row = await rowOf(s1.json.id);

  expect([scheduled.status, row.plan_id === callsB, row.scheduled_change_plan_id, row.scheduled_change_at]).toEqual([200, true, null, null]);
});
