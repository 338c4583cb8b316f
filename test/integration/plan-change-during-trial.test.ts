/**
 * A plan change during the trial keeps the trial and sets the plan the first paid period bills (as Stripe and Orb
 * do: nothing was billed in the trial, so nothing is prorated). Before, the workflow refused any change before its
 * first period with 409 subscription_not_active: the user who upgraded during a free trial could not, and the first
 * invoice billed the trial's plan.
 *
 *   basic 10.00 (P1M, trial P14D, tokens 0.01); pro 25.00 (P1M, trial P7D, tokens 0.02, calls 0.10), grace PT1H
 *   2033-03-01 S1 and S2 start on basic, trialing until Mar 15
 *   2033-03-04 (day 3) S1 changes to pro now, S2 "at period end": both answered 200 immediate, no invoice;
 *              both stay trialing until Mar 15 (pro's 7-day trial does not replace the 14 days granted)
 *   2033-03-15 first period [Mar 15, Apr 15): S1 25.00, S2 25.00 (pro's fee)
 *   2033-03-20 S1: 300 tokens, 4 calls
 *   2033-04-15 S1: 25.00 + 300 x 0.02 + 4 x 0.10 = 25.00 + 6.00 + 0.40 = 31.40; S2: 25.00 (pro's two charges, 0.00 each)
 *   before:    both changes 409 subscription_not_active; Mar 15 invoices 10.00, Apr 15 S1 10.00 + 3.00 = 13.00
 *
 * API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import type { SubscriptionRow } from '../../store/subscriptions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { recordHistory } from '../support/histories';

const stack = useApiStack();

async function subscribe(externalId: string): Promise<string> {
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'pct-basic', start_at: '2033-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  return subscription.json.id;
}

/** Each period invoice as `period start: total (usage lines)`, once the one for `last` is written. */
async function periodInvoices(subscriptionId: string, last: string): Promise<string[]> {
  await eventually(() => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period', period_start: new Date(last) }).first(), `the invoice of ${last}`);
  const invoices = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy('period_start');
  return Promise.all(
    invoices.map(async (invoice) => {
      const usage = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind: 'usage' }).orderBy('position');
      return `${invoice.kind} ${invoice.period_start.toISOString().slice(0, 10)}: ${Number(invoice.total).toFixed(2)} (${usage.map((line) => Number(line.amount).toFixed(2)).join(', ')})`;
    }),
  );
}

test("a plan change in the trial keeps the trial, and the first period bills the new plan's fee and prices", async () => {
  for (const metric of [
    { code: 'pct_tokens', name: 'Tokens', event_type: 'pct.request', aggregation: 'sum', property: 'tokens' },
    { code: 'pct_calls', name: 'Calls', event_type: 'pct.call', aggregation: 'count' },
  ]) {
    expect((await stack.api.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  const perUnit = (metric_code: string, unitPrice: string) => ({ metric_code, price: { model: 'per_unit', unitPrice } });
  const plan = (code: string, flat_fee: string, trial_period: string, charges: unknown[]) =>
    stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee, trial_period, usage_grace_period: 'PT1H', charges });
  expect((await plan('pct-basic', '10.00', 'P14D', [perUnit('pct_tokens', '0.01')])).status).toBe(201);
  expect((await plan('pct-pro', '25.00', 'P7D', [perUnit('pct_tokens', '0.02'), perUnit('pct_calls', '0.10')])).status).toBe(201);
  const [now, atPeriodEnd] = [await subscribe('pct-now'), await subscribe('pct-period-end')];

  await stack.skipTo('2033-03-04T00:00:00Z');
  const change = async (subscriptionId: string, effective: string) => {
    const answer = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'pct-pro', effective }, { 'Idempotency-Key': `pct-${effective}` });
    const row = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}`);
    const scheduled = (await stack.db<SubscriptionRow>('subscriptions').where({ id: subscriptionId }).first())!.scheduled_change_plan_id;
    return {
      answer: [answer.status, answer.json.code ?? answer.json.effective, answer.json.plan_code, answer.json.invoice, answer.json.effective_at?.slice(0, 10)],
      subscription: [row.json.plan.code, row.json.status, row.json.trial_end, scheduled],
    };
  };
  const inTrial = { answer: [200, 'immediate', 'pct-pro', null, '2033-03-04'], subscription: ['pct-pro', 'trialing', '2033-03-15T00:00:00.000Z', null] };
  expect({ now: await change(now, 'immediate'), atPeriodEnd: await change(atPeriodEnd, 'period_end') }).toEqual({ now: inTrial, atPeriodEnd: inTrial });

  await stack.skipTo('2033-03-20T00:00:00Z');
  // The first run, through the trial's plan change and the first period's opening, as a replay fixture.
  const workflowId: string = (await stack.api.call('GET', `/v1/subscriptions/${now}`)).json.workflow_id;
  await recordHistory(stack.env.client.workflow.getHandle(workflowId), 'subscription-plan-change-during-trial');
  const events = [
    { id: 'pct-tokens', customer: 'pct-now', type: 'pct.request', timestamp: '2033-03-20T00:00:00Z', properties: { tokens: 300 } },
    ...Array.from({ length: 4 }, (_, n) => ({ id: `pct-call-${n}`, customer: 'pct-now', type: 'pct.call', timestamp: '2033-03-20T00:00:00Z', properties: {} })),
  ];
  expect((await stack.api.call('POST', '/v1/events', { events })).json).toMatchObject({ accepted: 5 });

  await stack.skipTo('2033-04-15T02:00:00Z');
  expect({ now: await periodInvoices(now, '2033-04-15T00:00:00Z'), atPeriodEnd: await periodInvoices(atPeriodEnd, '2033-04-15T00:00:00Z') }).toEqual({
    now: ['period 2033-03-15: 25.00 ()', 'period 2033-04-15: 31.40 (6.00, 0.40)'],
    atPeriodEnd: ['period 2033-03-15: 25.00 ()', 'period 2033-04-15: 25.00 (0.00, 0.00)'],
  });
}, 240_000);

/**
 * Before a later start (status scheduled) a change, too, sets the plan the first period bills; its usage is priced from
 * the start, so the overlap check counts it from there, as for a subscription created on that plan.
 *
 *   pct-calls prices pct.call (no trial); pct-plain prices nothing; P1M
 *   2034-01-01 X on pct-calls, canceled at its period's end (Feb 1); Y on pct-plain, to start Feb 10
 *   2034-01-05 Y changes to pct-pro (prices pct.call): 200, and the first period from Feb 10 bills 25.00, no trial
 *   counted from now (the request's time), X's calls until Feb 1 overlapped: 409 metered_usage_overlap
 */
test('a change before a later start sets the first period\'s plan, priced from the start', async () => {
  const plan = (code: string, charges: unknown[]) => stack.api.call('POST', '/v1/plans', { code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00', usage_grace_period: 'PT1H', charges });
  expect((await plan('pct-calls', [{ metric_code: 'pct_calls', price: { model: 'per_unit', unitPrice: '0.10' } }])).status).toBe(201);
  expect((await plan('pct-plain', [])).status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'pct-later', name: 'pct-later', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const x = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'pct-calls', start_at: '2034-01-01T00:00:00Z' });
  const y = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'pct-plain', start_at: '2034-02-10T00:00:00Z' });
  expect([x.status, y.status]).toEqual([201, 201]);
  await stack.skipTo('2034-01-05T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${x.json.id}/cancel`, { at: 'period_end', reason: 'moving' })).json.status).toBe('pending_cancellation');

  const answer = await stack.api.call('POST', `/v1/subscriptions/${y.json.id}/plan-change`, { plan_code: 'pct-pro', effective: 'immediate' }, { 'Idempotency-Key': 'pct-later' });
  const status = (await stack.api.call('GET', `/v1/subscriptions/${y.json.id}`)).json.status;
  await stack.skipTo('2034-02-10T01:00:00Z');
  const first = await eventually(() => stack.db<InvoiceRow>('invoices').where({ subscription_id: y.json.id, kind: 'period' }).first(), "Y's first invoice");
  expect({ answer: [answer.status, answer.json.code ?? answer.json.plan_code, status], first: [first.period_start.toISOString(), Number(first.total).toFixed(2)] }).toEqual({
    answer: [200, 'pct-pro', 'scheduled'],
    first: ['2034-02-10T00:00:00.000Z', '25.00'],
  });
}, 240_000);
