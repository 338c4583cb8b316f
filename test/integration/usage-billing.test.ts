/**
 * Usage from raw events to rated invoice lines, through the real API, workflow, activities and Postgres, on a
 * time-skipping Temporal server: every counted event is billed exactly once, a late one is listed, not lost.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate, SubscriptionState, subscriptionStateQuery } from '../../workflows/definitions';
import { recordHistory } from '../support/histories';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const skipTo = (instant: string): Promise<void> => stack.skipTo(instant);

async function stateOf(handle: WorkflowHandle): Promise<SubscriptionState> {
  return handle.query(subscriptionStateQuery);
}

const tokens = (id: string, timestamp: string, count: number) => ({ id, customer: 'acme', type: 'llm.request', timestamp, properties: { tokens: count, model: 'large' } });
const ticket = (id: string, timestamp: string) => ({ id, customer: 'acme', type: 'ticket.resolved', timestamp, properties: {} });

test('three periods: events across boundaries, a duplicate and a late event are billed exactly once', async () => {
  // Catalog: tokens at 0.001 each, resolved tickets at 0.99 each (an outcome fee), 20.00 a month with 5.00 of
  // usage included (the hybrid model), usage closes one hour after each period (the grace window).
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'resolved_tickets', name: 'Resolved tickets', event_type: 'ticket.resolved', aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'ai-hybrid',
    name: 'AI hybrid',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '20.00',
    credit_bucket: '5.00',
    usage_grace_period: 'PT1H',
    charges: [
      { metric_code: 'tokens', price: { model: 'per_unit', unitPrice: '0.001' } },
      { metric_code: 'resolved_tickets', price: { model: 'per_unit', unitPrice: '0.99' } },
    ],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'ai-hybrid', start_at: '2031-03-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  const subscriptionId: string = subscription.json.id;
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`);

  // Timeline (UTC, 2031):
  //   P0 [Mar 1, Apr 1)  flat 20.00 in advance        usage: 1000 + 2000 tokens, 3 tickets
  //   Apr 1 00:30        an event stamped Mar 31 23:59:59 arrives inside the grace window -> counted in P0
  //   Apr 1 01:00        P0 usage closes; INV P1 = 20.00 + 3.00 + 2.97 - 5.00 credit = 20.97
  //   Apr 2              a P0 event arrives: late (listed, not billed); a resend of b1 is a duplicate
  //   P1 [Apr 1, May 1)  usage: 4000 tokens (b1 at exactly Apr 1 00:00), 2 tickets
  //   May 1 01:00        INV P2 = 20.00 + 4.00 + 1.98 - 5.00 = 20.98
  //   May 10             cancel at period end
  //   Jun 1 01:00        closing invoice for P2 usage: 500 tokens = 0.50 - 0.50 credit = 0.00; canceled
  await skipTo('2031-03-15T00:00:00Z');
  const march = await stack.api.call('POST', '/v1/events', {
    events: [tokens('a1', '2031-03-10T08:00:00Z', 1000), ticket('t1', '2031-03-11T09:00:00Z'), ticket('t2', '2031-03-12T09:00:00Z'), ticket('t3', '2031-03-13T09:00:00Z')],
  });
  expect(march.json).toMatchObject({ accepted: 4, duplicates: 0, rejected: 0 });

  const live = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(live.json.projected).toMatchObject({ usage_total: '3.97', credit_applied: '3.97', credit_remaining: '1.03', subtotal: '0.00' });

  await skipTo('2031-04-01T00:30:00Z');
  const boundary = await stack.api.call('POST', '/v1/events', {
    events: [tokens('a2', '2031-03-31T23:59:59Z', 2000), tokens('b1', '2031-04-01T00:00:00Z', 4000), tokens('bad', 'yesterday', 1), { ...tokens('x', '2031-04-01T00:10:00Z', 1), customer: 'nobody' }],
  });
  expect(boundary.json).toMatchObject({
    accepted: 2,
    rejected: 2,
    errors: [
      { index: 2, code: 'invalid_timestamp' },
      { index: 3, code: 'unknown_customer' },
    ],
  });

  await skipTo('2031-04-02T00:00:00Z');
  expect((await stateOf(handle)).currentPeriod?.index).toBe(1);
  const april = await stack.api.call('POST', '/v1/events', {
    events: [tokens('late1', '2031-03-20T00:00:00Z', 100), tokens('b1', '2031-04-01T00:00:00Z', 4000), ticket('t4', '2031-04-02T00:00:00Z'), ticket('t5', '2031-04-02T00:00:01Z')],
  });
  expect(april.json).toMatchObject({ accepted: 3, duplicates: 1, rejected: 0 });

  await skipTo('2031-05-10T00:00:00Z');
  await stack.api.call('POST', '/v1/events', { events: [tokens('c1', '2031-05-05T00:00:00Z', 500)] });
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await handle.result();

  const invoices = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId }).orderBy(['period_start', 'created_at']);
  expect(invoices.map((invoice) => [invoice.kind, invoice.period_start.toISOString().slice(0, 10), invoice.total])).toEqual([
    ['period', '2031-03-01', '20.000000000000'],
    ['period', '2031-04-01', '20.970000000000'],
    ['period', '2031-05-01', '20.980000000000'],
    ['closing', '2031-05-01', '0.000000000000'],
  ]);
  const aprilLines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoices[1].id }).orderBy('position');
  expect(aprilLines.map((line) => [line.kind, line.metric_code, Number(line.quantity), line.amount, line.period_start.toISOString().slice(0, 10)])).toEqual([
    ['flat_fee', null, 1, '20.000000000000', '2031-04-01'],
    ['usage', 'tokens', 3000, '3.000000000000', '2031-03-01'],
    ['usage', 'resolved_tickets', 3, '2.970000000000', '2031-03-01'],
    ['credit', null, 1, '-5.000000000000', '2031-03-01'],
  ]);

  // Exactly once: every stored event but the late one was claimed by exactly one usage close.
  const unclaimed = await stack.db('usage_events').whereNull('period_close_id').select('event_id', 'late');
  expect(unclaimed).toEqual([{ event_id: 'late1', late: true }]);
  const claimedPerClose = await stack.db('usage_period_closures').where({ subscription_id: subscriptionId }).orderBy('period_start').select('event_count');
  expect(claimedPerClose.map((row) => Number(row.event_count))).toEqual([5, 3, 1]);

  const late = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/late-usage`);
  expect(late.json.data).toEqual([expect.objectContaining({ id: 'late1', type: 'llm.request', timestamp: '2031-03-20T00:00:00.000Z' })]);

  // History budget: every period's share stays small however many events arrived (they never reach the workflow).
  // Walk the continue-as-new chain backwards from the last run: each run's first event names the one before.
  const runLengths: number[] = [];
  const patchMarkers: number[] = [];
  let runId: string | undefined = (await handle.describe()).runId;
  for (let guard = 0; runId && guard < 10; guard += 1) {
    const run: WorkflowHandle = stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`, runId);
    const history: Awaited<ReturnType<WorkflowHandle['fetchHistory']>> = await run.fetchHistory();
    runLengths.unshift(history.events!.length);
    patchMarkers.unshift(history.events!.filter((event) => event.markerRecordedEventAttributes?.markerName === 'core_patch').length);
    // Both runs: one of them opened a period in the same run (which one depends on the id), the other continued.
    await recordHistory(run, `subscription-periods-share-a-run-${guard === 0 ? 'last' : 'first'}`);
    runId = history.events![0].workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  }
  // Three periods in two runs: a run covers two periods (one of the two boundaries continues as new, which one
  // depends on the subscription id's parity, ./workflows/subscription/state.ts `nextPeriodInThisRun`): 25 + 55 or
  // 39 + 41 events, including the patch marker and its upsert once. With a run per period it was 25 + 17 + 41 = 83.
  // The last period carries the cancel update and the closing invoice's close-invoice-charge cycle.
  expect(runLengths.length).toBe(2);
  // Patches: the released generation's marker at the first task, and `stretch-opened-before-status` where the first
  // period opens with a status change (once in the subscription's life); none at a later boundary
  // (./workflows/subscription/patch-ids.ts).
  expect(patchMarkers).toEqual([2, 0]);
  expect(runLengths.reduce((sum, length) => sum + length, 0)).toBeLessThanOrEqual(80);
});

test('bad ingestion requests are rejected whole with problem+json and write nothing', async () => {
  // acme's subscription ended on Jun 1: events are stamped before that (after it they are refused as such).
  await skipTo('2031-07-01T00:00:00Z');
  const before = await stack.db('usage_events').count<{ count: string }[]>('* as count');
  const tooMany = await stack.api.call('POST', '/v1/events', { events: Array.from({ length: 1001 }, (_, i) => tokens(`m${i}`, '2031-05-20T00:00:00Z', 1)) });
  expect(tooMany).toMatchObject({ status: 422, json: { code: 'validation_failed' } });
  const allBad = await stack.api.call('POST', '/v1/events', { events: [tokens('n1', 'not a time', 1), { ...tokens('n2', '2031-05-20T00:00:00Z', 1), properties: { tokens: 'lots' } }] });
  expect(allBad.status).toBe(422);
  expect(allBad.type).toContain('application/problem+json');
  expect(allBad.json.errors.map((error: { index: number; code: string }) => [error.index, error.code])).toEqual([
    [0, 'invalid_timestamp'],
    [1, 'non_numeric_property'],
  ]);
  const future = await stack.api.call('POST', '/v1/events', tokens('f1', '2099-01-01T00:00:00Z', 1));
  expect(future.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'timestamp_in_future' })]);
  expect(await stack.db('usage_events').count<{ count: string }[]>('* as count')).toEqual(before);
});

test('concurrent resends of the same events are stored once', async () => {
  // Stamped inside acme's last period, which has closed: late usage (a re-rating bills it), stored once.
  const batch = { events: Array.from({ length: 200 }, (_, i) => tokens(`race-${i}`, '2031-05-20T00:00:00Z', 1)) };
  const answers = await Promise.all(Array.from({ length: 5 }, () => stack.api.call('POST', '/v1/events', batch)));
  const accepted = answers.reduce((sum, answer) => sum + answer.json.accepted, 0);
  const duplicates = answers.reduce((sum, answer) => sum + answer.json.duplicates, 0);
  expect(accepted).toBe(200);
  expect(duplicates).toBe(800);
  expect(Number((await stack.db('usage_events').where('event_id', 'like', 'race-%').count<{ count: string }[]>('* as count'))[0].count)).toBe(200);
});
