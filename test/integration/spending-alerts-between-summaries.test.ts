/**
 * Usage reaches a workflow as summary signals, at most two per subscription per billing period (api/usage-signals.ts:
 * the history budget). The spending check (budget alerts, credit alerts, the plan's hard cap) runs on those
 * signals, so a budget crossed the day after the period's first summary was told about half a period later (and a
 * hard cap let usage through until then). A crossing is now sent at once, whatever the window: the customer hears
 * of 80 % and 100 % of the budget on the flush after the usage that crossed them.
 * API coalescer, workflow, time-skipping server and a real Postgres.
 */
import { UsageSignalCoalescer } from '../../api/usage-signals';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'initech', type: 'api.calls', timestamp, properties: { n } });

test('a budget threshold crossed between two summaries is alerted on the next flush, not half a period later', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', { code: 'budgeted', name: 'Calls', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1.00' } }] });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'budgeted', start_at: '2033-06-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  expect((await stack.api.call('PUT', `/v1/subscriptions/${subscriptionId}/budget`, { amount: '100.00', thresholds: ['50', '80', '100'] })).status).toBe(200);

  const coalescer = new UsageSignalCoalescer(stack.db, stack.env.client, { thresholds: null });
  const alerts = async (): Promise<string[]> =>
    (await stack.db('outbox').where({ aggregate_id: subscriptionId, event_type: 'spending.threshold_reached' }).orderBy('id')).map(
      (row: { payload: { threshold: string; spend: string } }) => `${row.payload.threshold}% at ${row.payload.spend}`,
    );
  const ingest = async (id: string, at: string, n: number) => {
    expect((await stack.api.call('POST', '/v1/events', calls(id, at, n))).json).toMatchObject({ accepted: 1 });
    coalescer.record(customer.json.id, 1, new Date(at));
    await coalescer.flush();
  };

  // June 5: 60.00 spent, the period's first summary: 50 %.
  await stack.skipTo('2033-06-05T00:00:00Z');
  await ingest('c1', '2033-06-05T00:00:00Z', 60);
  await eventually(async () => ((await alerts()).length === 1 ? true : null), 'the 50 % alert');

  // June 6: 120.00 spent. The summary window (half the month) holds the next summary back; the crossing is sent.
  await stack.skipTo('2033-06-06T00:00:00Z');
  await ingest('c2', '2033-06-06T00:00:00Z', 60);
  await eventually(async () => ((await alerts()).length === 3 ? true : null), () => 'the 80 % and 100 % alerts on the next flush', { timeoutMs: 10_000 }).catch(() => undefined);
  expect(await alerts()).toEqual(['50% at 60.00', '80% at 120.00', '100% at 120.00']);

  // Nothing new crossed: the window holds summaries back again (no signal per flush).
  const signalsBefore = (await stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).fetchHistory()).events!.filter((event) => event.workflowExecutionSignaledEventAttributes).length;
  await ingest('c3', '2033-06-06T00:00:01Z', 1);
  await ingest('c4', '2033-06-06T00:00:02Z', 1);
  const signalsAfter = (await stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).fetchHistory()).events!.filter((event) => event.workflowExecutionSignaledEventAttributes).length;
  expect(signalsAfter).toBe(signalsBefore);
});
