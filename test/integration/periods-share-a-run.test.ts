/**
 * A run covers two periods (workflows/subscription/state.ts `nextPeriodInThisRun`): at each boundary one half of
 * the subscriptions (by id parity) continues as new and the other opens the next period in the same run. The two
 * paths must bill and show exactly the same: two subscriptions of opposite parity go through the same three
 * periods, a plan change at period end and usage, on the time-skipping server, one taking each path at each boundary.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { SubscriptionState, subscriptionStateQuery } from '../../workflows/definitions';
import { continuesAsNewAt } from '../../workflows/subscription/state';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

interface Started {
  readonly subscriptionId: string;
  readonly customer: string;
  readonly handle: WorkflowHandle;
}

/** Subscribes new customers until it has one subscription that continues as new at period 1 and one that does not. */
async function oneOfEachParity(): Promise<[Started, Started]> {
  const found = new Map<boolean, Started>();
  for (let attempt = 0; found.size < 2 && attempt < 40; attempt += 1) {
    const customer = `shared-${attempt}`;
    const created = await stack.api.call('POST', '/v1/customers', { external_id: customer, name: customer, currency: 'USD', payment_method: 'pm_sandbox_ok' });
    const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: created.json.id, plan_code: 'shared-basic', start_at: '2031-03-01T00:00:00Z' });
    expect(subscription.status).toBe(201);
    const subscriptionId: string = subscription.json.id;
    const started = { subscriptionId, customer, handle: stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`) };
    if (!found.has(continuesAsNewAt(subscriptionId, 1))) found.set(continuesAsNewAt(subscriptionId, 1), started);
    else await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'now', reason: 'not needed by the test' });
  }
  return [found.get(true)!, found.get(false)!];
}

/** What each period billed, in order: kind, period, total and every line's kind, quantity and amount. */
async function invoicesOf(subscriptionId: string): Promise<unknown[]> {
  const invoices = await stack.db('invoices').where({ subscription_id: subscriptionId }).orderBy('period_start');
  return Promise.all(
    invoices.map(async (invoice) => ({
      kind: invoice.kind,
      period: invoice.period_start.toISOString(),
      total: invoice.total,
      status: invoice.status,
      lines: (await stack.db('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position')).map((line) => [line.kind, line.quantity, line.amount, line.period_start?.toISOString()]),
    })),
  );
}

/** How many runs the subscription's workflow has had (the continue-as-new chain back from the latest). */
async function runCount(handle: WorkflowHandle): Promise<number> {
  let runs = 0;
  let runId: string | undefined = (await handle.describe()).runId;
  while (runId) {
    runs += 1;
    const history = await stack.env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
    runId = history.events![0].workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  }
  return runs;
}

/** The state with what differs between two subscriptions anyway (ids, invoice numbers) left out. */
const comparable = (state: SubscriptionState) => ({
  ...state,
  subscriptionId: null,
  customerId: null,
  lastInvoice: state.lastInvoice && { ...state.lastInvoice, invoiceId: null, number: null },
  timeline: state.timeline.map((entry) => entry.event),
});

test('a period opened in the same run bills and shows exactly what one opened in a new run does', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'shared_calls', name: 'Calls', event_type: 'shared.call', aggregation: 'count' })).status).toBe(201);
  const plan = (code: string, fee: string) => ({
    code,
    name: code,
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: fee,
    credit_bucket: '1.00',
    usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'shared_calls', price: { model: 'per_unit', unitPrice: '0.25' } }],
  });
  expect((await stack.api.call('POST', '/v1/plans', plan('shared-basic', '10.00'))).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/plans', plan('shared-pro', '30.00'))).status).toBe(201);
  const [continues, shares] = await oneOfEachParity();
  const both = [continues, shares];

  const calls = (customer: string, prefix: string, day: string, count: number) =>
    Array.from({ length: count }, (_, index) => ({ id: `${customer}-${prefix}-${index}`, customer, type: 'shared.call', timestamp: `2031-${day}T10:00:00Z`, properties: {} }));
  await stack.skipTo('2031-03-20T00:00:00Z');
  for (const { customer, subscriptionId } of both) {
    expect((await stack.api.call('POST', '/v1/events', { events: calls(customer, 'mar', '03-15', 9) })).json.accepted).toBe(9);
    const change = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'shared-pro', effective: 'period_end' });
    expect(change.status).toBe(200);
  }
  // Boundary into period 1: one continues as new, the other opens period 1 in its run (on the new plan).
  await stack.skipTo('2031-04-20T00:00:00Z');
  for (const { customer } of both) expect((await stack.api.call('POST', '/v1/events', { events: calls(customer, 'apr', '04-15', 3) })).json.accepted).toBe(3);
  // Boundary into period 2: the other way round.
  await stack.skipTo('2031-05-20T00:00:00Z');

  const [billedContinuing, billedSharing] = await Promise.all(both.map(({ subscriptionId }) => invoicesOf(subscriptionId)));
  expect(billedSharing).toEqual(billedContinuing);
  // Period 0: 10.00; period 1: 30.00 (the change took effect at the boundary) + 9 x 0.25 - 1.00; period 2: 30.00 + 0.75 - 0.75.
  expect(billedContinuing.map((invoice) => (invoice as { total: string }).total)).toEqual(['10.000000000000', '31.250000000000', '30.000000000000']);

  const [stateContinuing, stateSharing] = await Promise.all(both.map(({ handle }) => handle.query(subscriptionStateQuery)));
  expect(comparable(stateSharing)).toEqual(comparable(stateContinuing));
  expect(stateSharing).toMatchObject({ planCode: 'shared-pro', status: 'active', currentPeriod: { index: 2, start: '2031-05-01T00:00:00.000Z' } });

  // Three periods in two runs each: one boundary each continued as new, the other stayed in the run.
  expect(await Promise.all(both.map(({ handle }) => runCount(handle)))).toEqual([2, 2]);
});
