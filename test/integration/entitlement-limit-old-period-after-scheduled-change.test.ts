/**
 * A hard feature limit (docs/wallets.md) belongs to the plan in force in the period the usage happened in. A plan
 * change scheduled for the period's end switches the subscription's plan at the boundary, before the closed
 * period's usage grace window; calls of the closed period that arrive inside that window were then judged against
 * the new plan's features (here: none), so the closed period billed past its own plan's limit.
 *
 *   P1M, grace PT6H, plan A: limit 3 calls at 1.00, change to plan B (no limit) at Feb 1
 *   Jan 31: 3 calls; Feb 1 01:00 two more calls stamped Jan 31   expected: refused, January bills 3.00
 */
import { formatMoney, toDecimal } from '../../domain/money';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const call = (id: string, timestamp: string) => ({ id, customer: 'sched-stark', type: 'sched.call', timestamp, properties: {} });

test("calls of the closed period arriving in its grace window are held to that period's plan limit", async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'sched_calls', name: 'Calls', event_type: 'sched.call', aggregation: 'count' })).status).toBe(201);
  for (const [code, features] of [
    ['sched-a', [{ code: 'calls', kind: 'metered', metric_code: 'sched_calls', limit: '3' }]],
    ['sched-b', []],
  ] as const) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '0',
      usage_grace_period: 'PT6H',
      charges: [{ metric_code: 'sched_calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
      features,
    });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'sched-stark', name: 'Stark', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'sched-a', start_at: '2033-01-01T00:00:00Z' });
  const id: string = subscription.json.id;

  await stack.skipTo('2033-01-31T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [1, 2, 3].map((n) => call(`jan-${n}`, '2033-01-31T00:00:00Z')) })).json).toMatchObject({ accepted: 3 });
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/plan-change`, { plan_code: 'sched-b', effective: 'period_end' })).status).toBeLessThan(300);

  await stack.skipTo('2033-02-01T01:00:00Z');
  const late = await stack.api.call('POST', '/v1/events', { events: [4, 5].map((n) => call(`jan-${n}`, '2033-01-31T12:00:00Z')) });

  await stack.skipTo('2033-02-01T07:00:00Z');
  const lines: { period_start: Date; amount: string }[] = await stack.db('invoice_lines as l')
    .join('invoices as i', 'i.id', 'l.invoice_id')
    .where({ 'i.subscription_id': id, 'l.kind': 'usage' })
    .select('l.period_start', 'l.amount');
  expect({ accepted: late.json.accepted ?? 0, billed: lines.map((line) => `${line.period_start.toISOString()} ${formatMoney(toDecimal(line.amount), 'USD')}`) }).toEqual({
    accepted: 0,
    billed: ['2033-01-01T00:00:00.000Z 3.00'],
  });
});
