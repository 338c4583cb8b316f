/**
 * A `period_end` plan change whose answer was lost is recorded on the row at the period end the row showed
 * (api/routes/subscription-lifecycle.ts). When the workflow gets the very request only after that boundary, it
 * schedules the change for the next one. Before, the record stopped counting as soon as the row showed the period its
 * instant opens, while the workflow still held the change: a subscription created meanwhile pricing the scheduled
 * plan's event types was accepted, and from the next boundary both priced them.
 *
 *   dl-other prices dl.other; dl-calls-b (1.00) and dl-calls-c (2.00) price dl.calls (P1M, grace PT1H)
 *   2035-01-01 S1 on dl-other | Jan 20 S1 asks dl-calls-b at period end: the answer is lost (503), the row records Feb 1
 *   Feb 1 00:30 the same update (same update id) reaches the workflow, now in [Feb 1, Mar 1): scheduled for Mar 1
 *   Feb 1 02:00 the row shows [Feb 1, Mar 1) | S2 on dl-calls-c for the customer
 *   expected: S2 refused 409 metered_usage_overlap naming S1 for dl.calls; Mar 1 S1 alone prices dl.calls
 *   before:   S2 accepted (201); Mar 1 S1 switched to dl-calls-b, and S1 and S2 both priced dl.calls (each event
 *             billed by whichever period close claimed it first: at 1.00 or 2.00, a seat metric by both)
 *
 * API, workflow, time-skipping server and a real Postgres; the API's client loses the answer without asking the
 * workflow, and the test asks the workflow itself later with the options the route used.
 */
import type { Client } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { TemporalDeadlinePassed } from '../../api/temporal-deadline';
import type { SubscriptionRow } from '../../store/subscriptions';
import { changePlanUpdate, SEARCH_ATTRIBUTES } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

/**
 * Set by a test: the next plan change's answer is lost, either before it reaches the workflow (`unasked`: the test
 * delivers it later with the options kept in `lostUpdate`) or after the workflow took it (`asked`).
 */
let loseNextPlanChange: 'unasked' | 'asked' | null = null;
let lostUpdate: { workflowId: string; options: unknown } | null = null;
/** Runs after the workflow took an `asked` change and before its answer is lost (the row moving meanwhile). */
let beforeLosing: (() => Promise<void>) | null = null;

/** The API's Temporal client, whose next plan change fails as a passed deadline (`loseNextPlanChange`). */
function losingPlanChangeAnswers(client: Client): Client {
  const bound = <T extends object>(target: T, prop: string | symbol): unknown => {
    const value = Reflect.get(target, prop, target) as unknown;
    return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
  };
  const getHandle: typeof client.workflow.getHandle = (...args) => {
    const handle = client.workflow.getHandle(...args);
    const askWorkflow = handle.executeUpdate.bind(handle) as (definition: unknown, options: unknown) => Promise<unknown>;
    const executeUpdate = async (definition: UpdateDefinition<unknown, unknown[]> | string, options: unknown): Promise<unknown> => {
      const lose = (typeof definition === 'string' ? definition : definition.name) === changePlanUpdate.name ? loseNextPlanChange : null;
      loseNextPlanChange = lose ? null : loseNextPlanChange;
      if (lose === 'unasked') lostUpdate = { workflowId: handle.workflowId, options };
      if (lose === 'asked') await askWorkflow(definition, options).then(() => beforeLosing?.());
      if (lose) throw new TemporalDeadlinePassed(5000, new Error('cancelled'));
      return askWorkflow(definition, options);
    };
    return Object.assign(Object.create(handle) as typeof handle, { executeUpdate });
  };
  const workflow = new Proxy(client.workflow, { get: (target, prop) => (prop === 'getHandle' ? getHandle : bound(target, prop)) });
  return new Proxy(client, { get: (target, prop) => (prop === 'workflow' ? workflow : bound(target, prop)) });
}

const stack = useApiStack({ apiTemporal: losingPlanChangeAnswers });

beforeAll(async () => {
  for (const [code, type] of [['dl_calls', 'dl.calls'], ['dl_other', 'dl.other']]) {
    expect((await stack.api.call('POST', '/v1/metrics', { code, name: code, event_type: type, aggregation: 'count' })).status).toBe(201);
  }
  for (const [code, metric, unitPrice] of [['dl-other', 'dl_other', '1.00'], ['dl-calls-b', 'dl_calls', '1.00'], ['dl-calls-c', 'dl_calls', '2.00']]) {
    const charges = [{ metric_code: metric, price: { model: 'per_unit', unitPrice } }];
    expect((await stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges })).status).toBe(201);
  }
});

afterEach(() => {
  loseNextPlanChange = null;
  lostUpdate = null;
  beforeLosing = null;
});

async function customer(externalId: string): Promise<string> {
  const created = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  expect(created.status).toBe(201);
  return created.json.id;
}

const rowOf = async (id: string) => (await stack.db<SubscriptionRow>('subscriptions').where({ id }).first())!;
const planIdOf = async (code: string) => (await stack.db('plans').where({ code }).first('id')).id as string;

test('a lost answer delivered after the boundary is still counted: a subscription pricing the scheduled plan is refused until it applies', async () => {
  const customerId = await customer('dl-late');
  const s1 = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'dl-other', start_at: '2035-01-01T00:00:00Z' });
  expect(s1.status).toBe(201);
  const [callsB, callsC] = [await planIdOf('dl-calls-b'), await planIdOf('dl-calls-c')];
  await stack.skipTo('2035-01-20T00:00:00Z');

  loseNextPlanChange = 'unasked';
  const asked = await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/plan-change`, { plan_code: 'dl-calls-b', effective: 'period_end' }, { 'Idempotency-Key': 'dl-late-1' });
  const lost = lostUpdate;
  if (!lost) throw new Error('the route did not ask the workflow');
  const recorded = await rowOf(s1.json.id);

  // The delayed request reaches the workflow after the boundary, under the update id the route gave it.
  await stack.skipTo('2035-02-01T00:30:00Z');
  const delivered = await stack.env.client.workflow.getHandle(lost.workflowId).executeUpdate(changePlanUpdate, lost.options as never);
  await stack.skipTo('2035-02-01T02:00:00Z');
  await eventually(async () => (await rowOf(s1.json.id)).current_period_start?.toISOString() === '2035-02-01T00:00:00.000Z', 'S1 shows [Feb 1, Mar 1)');

  // S2 starts now, on the server's clock (the route's default start is the machine's).
  const s2 = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'dl-calls-c', start_at: '2035-02-01T02:00:00Z' });

  // What the next boundary does: S1 switches to dl-calls-b; whoever else prices dl.calls then prices it beside S1.
  await stack.skipTo('2035-03-01T02:00:00Z');
  await eventually(async () => (await rowOf(s1.json.id)).plan_id === callsB, 'S1 switched to dl-calls-b');
  const pricingCalls = await stack.db<SubscriptionRow>('subscriptions').where({ customer_id: customerId }).whereIn('plan_id', [callsB, callsC]).whereNot({ status: 'canceled' }).count<{ count: string }[]>('* AS count');

  expect({
    asked: [asked.status, asked.json.code],
    recorded: [recorded.scheduled_change_plan_id === callsB, recorded.scheduled_change_at?.toISOString()],
    delivered: [delivered.effective, delivered.effectiveAt],
    s2: [s2.status, s2.json.code, s2.json.conflicting_subscription_id, s2.json.event_types],
    subscriptionsPricingCallsFromMar1: Number(pricingCalls[0].count),
  }).toEqual({
    asked: [503, 'temporal_unavailable'],
    recorded: [true, '2035-02-01T00:00:00.000Z'],
    delivered: ['period_end', '2035-03-01T00:00:00.000Z'],
    s2: [409, 'metered_usage_overlap', s1.json.id, ['dl.calls']],
    subscriptionsPricingCallsFromMar1: 1,
  });
});

test('a change asked in the grace window after the boundary, its answer lost, is still counted through the period it was recorded for', async () => {
  // 2035-04-01 S1 on dl-other | May 1 00:30 (the row still shows [Apr 1, May 1) until the opening invoice after the
  // grace hour) S1 asks dl-calls-b at period end: the workflow, in [May 1, Jun 1), schedules it for Jun 1; the answer
  // is lost and the row records May 1 | 02:00 the row shows [May 1, Jun 1) | S2 on dl-calls-c.
  // Before: S2 accepted (201), and from Jun 1 S1 and S2 both priced dl.calls.
  const customerId = await customer('dl-grace');
  const s1 = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'dl-other', start_at: '2035-04-01T00:00:00Z' });
  expect(s1.status).toBe(201);
  await stack.skipTo('2035-05-01T00:30:00Z');

  loseNextPlanChange = 'asked';
  const asked = await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/plan-change`, { plan_code: 'dl-calls-b', effective: 'period_end' }, { 'Idempotency-Key': 'dl-grace-1' });
  const recordedAt = (await rowOf(s1.json.id)).scheduled_change_at?.toISOString();
  await stack.skipTo('2035-05-01T02:00:00Z');
  await eventually(async () => (await rowOf(s1.json.id)).current_period_start?.toISOString() === '2035-05-01T00:00:00.000Z', 'S1 shows [May 1, Jun 1)');
  const workflowId = (await rowOf(s1.json.id)).workflow_id;
  const held = (await stack.env.client.workflow.getHandle(workflowId).describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.scheduledChange);

  const s2 = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'dl-calls-c', start_at: '2035-05-01T02:00:00Z' });

  expect({
    asked: [asked.status, asked.json.code],
    recordedAt,
    held,
    s2: [s2.status, s2.json.code, s2.json.conflicting_subscription_id, s2.json.event_types],
  }).toEqual({
    asked: [503, 'temporal_unavailable'],
    recordedAt: '2035-05-01T00:00:00.000Z',
    held: 'dl-calls-b@2035-06-01T00:00:00.000Z',
    s2: [409, 'metered_usage_overlap', s1.json.id, ['dl.calls']],
  });
});

test('a change the workflow never took refuses one period longer than its instant, then lapses: what the longer count costs', async () => {
  // 2035-07-01 S1 on dl-other | Jul 20 S1 asks dl-calls-b at period end: lost before the workflow got it (never
  // delivered, never retried), the row records Aug 1 | Aug 1 02:00 the row shows [Aug 1, Sep 1): S2 refused (before
  // the fix accepted here: the row cannot tell this record from one the workflow took late) | Sep 1 02:00 the row
  // shows [Sep 1, Oct 1): the record lapses, S2 accepted; S1 stays on dl-other.
  const customerId = await customer('dl-never');
  const s1 = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'dl-other', start_at: '2035-07-01T00:00:00Z' });
  expect(s1.status).toBe(201);
  await stack.skipTo('2035-07-20T00:00:00Z');
  loseNextPlanChange = 'unasked';
  const asked = await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/plan-change`, { plan_code: 'dl-calls-b', effective: 'period_end' });

  const s2At = async (instant: string) => {
    await stack.skipTo(instant);
    await eventually(async () => (await rowOf(s1.json.id)).current_period_start?.toISOString() === instant.replace('02:00:00Z', '00:00:00.000Z'), `S1 shows the period of ${instant}`);
    return stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'dl-calls-c', start_at: instant });
  };
  const inTheRecordedPeriod = await s2At('2035-08-01T02:00:00Z');
  const inTheNext = await s2At('2035-09-01T02:00:00Z');
  const s1Row = await rowOf(s1.json.id);

  expect({
    asked: asked.status,
    inTheRecordedPeriod: [inTheRecordedPeriod.status, inTheRecordedPeriod.json.code],
    inTheNext: inTheNext.status,
    s1StaysOnItsPlan: s1Row.plan_id === (await planIdOf('dl-other')),
  }).toEqual({ asked: 503, inTheRecordedPeriod: [409, 'metered_usage_overlap'], inTheNext: 201, s1StaysOnItsPlan: true });
});

// The route reads the row before it asks, and records a lost answer at the period end it read. Asked in the grace
// window ([Oct 1, Oct 1 01:00): the row still shows [Sep 1, Oct 1)), the workflow schedules the change for Nov 1; the
// opening invoice may move the row to [Oct 1, Nov 1) before the route writes (within the Temporal deadline). Before,
// the write skipped such a row (`current_period_start < at` in scheduledChangeCanStand), so nothing counted the change
// the workflow held: S2 was accepted (201), and from Nov 1 S1 and S2 both priced dl.calls.
test('a lost answer whose row moved to the next period before the route wrote it is still counted', async () => {
  const customerId = await customer('dl-moved');
  const s1 = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'dl-other', start_at: '2035-09-01T00:00:00Z' });
  expect(s1.status).toBe(201);
  await stack.skipTo('2035-10-01T00:30:00Z');

  loseNextPlanChange = 'asked';
  beforeLosing = async () => {
    await stack.skipTo('2035-10-01T02:00:00Z');
    await eventually(async () => (await rowOf(s1.json.id)).current_period_start?.toISOString() === '2035-10-01T00:00:00.000Z', 'S1 shows [Oct 1, Nov 1)');
  };
  const asked = await stack.api.call('POST', `/v1/subscriptions/${s1.json.id}/plan-change`, { plan_code: 'dl-calls-b', effective: 'period_end' }, { 'Idempotency-Key': 'dl-moved-1' });
  const workflowId = (await rowOf(s1.json.id)).workflow_id;
  const held = (await stack.env.client.workflow.getHandle(workflowId).describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.scheduledChange);
  const s2 = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customerId, plan_code: 'dl-calls-c', start_at: '2035-10-01T02:00:00Z' });

  expect({ asked: asked.status, held, s2: [s2.status, s2.json.code] }).toEqual({ asked: 503, held: 'dl-calls-b@2035-11-01T00:00:00.000Z', s2: [409, 'metered_usage_overlap'] });
});
