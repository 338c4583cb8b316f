/**
 * Usage stamped after the customer's subscription ended (or after the instant a pending cancellation takes effect)
 * is refused at the edge: no invoice will ever bill it, and no late-usage list shows it. Before, it was accepted
 * (200) and then silently never billed, against "every accepted event is billed exactly once or visibly pending".
 * Usage stamped before the end and sent late is still accepted: the closing invoice or a re-rating bills it.
 * API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'tyrell', type: 'api.calls', timestamp, properties: { n } });

test('usage stamped after a subscription ends is refused; usage stamped before it and sent late is billed', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', { code: 'calls', name: 'Calls', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.10' } }] });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'tyrell', name: 'Tyrell', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'calls', start_at: '2034-01-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`);

  // Timeline (UTC, 2034): Jan 20 cancel at the period end (Feb 1 00:00). Feb 1 00:30, inside the grace window: one
  // event stamped Jan 31 23:00 (January's, late: billed on the closing invoice) and one stamped Feb 1 00:10 (after
  // the end: refused). Feb 10: one stamped Feb 10 (refused).
  await stack.skipTo('2034-01-20T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('jan', '2034-01-19T00:00:00Z', 100))).json).toMatchObject({ accepted: 1 });
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await stack.skipTo('2034-02-01T00:30:00Z');
  const inGrace = await stack.api.call('POST', '/v1/events', { events: [calls('late-jan', '2034-01-31T23:00:00Z', 10), calls('feb-1', '2034-02-01T00:10:00Z', 5)] });
  expect(inGrace.json).toMatchObject({ accepted: 1, rejected: 1, errors: [{ index: 1, code: 'timestamp_after_subscription_end' }] });

  await stack.skipTo('2034-02-10T00:00:00Z');
  const after = await stack.api.call('POST', '/v1/events', calls('feb-10', '2034-02-10T00:00:00Z', 7));
  expect(after.status).toBe(422);
  expect(after.json).toMatchObject({ code: 'batch_rejected', errors: [{ code: 'timestamp_after_subscription_end' }] });
  expect(await stack.db('usage_events').whereIn('event_id', ['feb-1', 'feb-10'])).toEqual([]);

  // The closing invoice bills January's 110 calls: every accepted event, once.
  const closing = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'closing' }).first(), 'the closing invoice');
  const usage = (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: closing.id, kind: 'usage' })).map((line) => [Number(line.quantity), Number(line.amount).toFixed(2)]);
  expect(usage).toEqual([[110, '11.00']]);
});
