/**
 * A hard feature limit (docs/wallets.md) is per billing period. A pause moves the period's end by the paused time
 * (the workflow's calendar), but the subscription row keeps the end stored when the period opened until the next
 * period invoice: from that stale end to the true one, ingestion judged the period's calls against no limit (and,
 * since the grace-window fix, against a fresh window), so the period billed past its limit.
 *
 *   P1M, limit 3 calls at 1.00   Jan 1 start   Jan 5: 3 calls   paused Jan 10 -> resumed Jan 20 (period ends Feb 11)
 *   Feb 5 (same period): 3 calls   expected: refused, the period bills 3.00;   seen: accepted, it bills 6.00
 */
import { formatMoney, toDecimal } from '../../domain/money';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const call = (id: string, timestamp: string) => ({ id, customer: 'pause-stark', type: 'pause.call', timestamp, properties: {} });

test('after a pause, the calls of the moved period are still held to its limit', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'pause_calls', name: 'Calls', event_type: 'pause.call', aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'pause-limited',
    name: 'Limited',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metric_code: 'pause_calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    features: [{ code: 'calls', kind: 'metered', metric_code: 'pause_calls', limit: '3' }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'pause-stark', name: 'Stark', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'pause-limited', start_at: '2033-01-01T00:00:00Z' });
  const id: string = subscription.json.id;

  await stack.skipTo('2033-01-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [1, 2, 3].map((n) => call(`jan-${n}`, '2033-01-05T00:00:00Z')) })).json).toMatchObject({ accepted: 3 });
  await stack.skipTo('2033-01-10T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/pause`, {})).status).toBeLessThan(300);
  await stack.skipTo('2033-01-20T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${id}/resume`, {})).status).toBeLessThan(300);

  await stack.skipTo('2033-02-05T00:00:00Z');
  const later = await stack.api.call('POST', '/v1/events', { events: [1, 2, 3].map((n) => call(`feb-${n}`, '2033-02-05T00:00:00Z')) });
  const answer = await stack.api.call('GET', `/v1/customers/${customer.json.id}/entitlements/calls`);

  await stack.skipTo('2033-02-12T00:00:00Z');
  const lines: { period_start: Date; period_end: Date; amount: string }[] = await stack.db('invoice_lines as l')
    .join('invoices as i', 'i.id', 'l.invoice_id')
    .where({ 'i.subscription_id': id, 'l.kind': 'usage' })
    .select('l.period_start', 'l.period_end', 'l.amount');
  // One period invoice billed the period's usage (its end moved by the paused time, give or take the skipped clock).
  const billed = lines.map((line) => formatMoney(toDecimal(line.amount), 'USD'));
  expect(lines.map((line) => line.period_end > new Date('2033-02-10T00:00:00Z'))).toEqual([true]);
  expect({ accepted: later.json.accepted ?? 0, answer: { usage: answer.json.usage, has_access: answer.json.has_access }, billed }).toEqual({
    accepted: 0,
    answer: { usage: '3', has_access: false },
    billed: ['3.00'],
  });
});
