/**
 * The hard feature limit in the usage grace window, through the whole system (API, workflow, time-skipping server,
 * Postgres): the workflow makes the new period the subscription's current one only when it issues that period's
 * invoice, after the closed period's grace window. Ingestion took the limit's window from the stored period, so
 * every call of the new period sent inside the grace window was accepted and billed past the plan's limit.
 *
 *   P1M, grace PT6H, limit 3 calls at 1.00     Jan: 3 calls            Feb 1 00:00 boundary, grace to 06:00
 *   Feb 1 01:00: 5 calls                       before: 5 accepted, February bills 5.00;  now: 3 accepted, 3.00
 */
import { formatMoney, toDecimal } from '../../domain/money';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const call = (id: string, timestamp: string) => ({ id, customer: 'grace-stark', type: 'grace.call', timestamp, properties: {} });

test('calls of a new period sent in the grace window are held to the limit and billed only as accepted', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'grace_calls', name: 'Calls', event_type: 'grace.call', aggregation: 'count' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'grace-limited',
    name: 'Limited',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    usage_grace_period: 'PT6H',
    charges: [{ metric_code: 'grace_calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    features: [{ code: 'calls', kind: 'metered', metric_code: 'grace_calls', limit: '3' }],
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'grace-stark', name: 'Stark', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'grace-limited', start_at: '2033-01-01T00:00:00Z' });
  expect(subscription.status).toBe(201);
  const id: string = subscription.json.id;

  await stack.skipTo('2033-01-10T00:00:00Z');
  const january = await stack.api.call('POST', '/v1/events', { events: [1, 2, 3, 4].map((n) => call(`jan-${n}`, '2033-01-10T00:00:00Z')) });
  expect(january.json).toMatchObject({ accepted: 3, rejected: 1 });

  // Inside February's grace window: the stored period is still January's.
  await stack.skipTo('2033-02-01T01:00:00Z');
  expect((await stack.db('subscriptions').where({ id }).first()).current_period_end).toEqual(new Date('2033-02-01T00:00:00Z'));
  const february = await stack.api.call('POST', '/v1/events', { events: [1, 2, 3, 4, 5].map((n) => call(`feb-${n}`, '2033-02-01T00:30:00Z')) });
  expect({ accepted: february.json.accepted, rejected: february.json.rejected }).toEqual({ accepted: 3, rejected: 2 });

  // March opens: its invoice bills February's calls.
  await stack.skipTo('2033-03-01T07:00:00Z');
  const lines: { period_start: Date; amount: string }[] = await stack.db('invoice_lines as l')
    .join('invoices as i', 'i.id', 'l.invoice_id')
    .where({ 'i.subscription_id': id, 'l.kind': 'usage' })
    .select('l.period_start', 'l.amount');
  const usageLines = lines.map((line) => `${line.period_start.toISOString()} ${formatMoney(toDecimal(line.amount), 'USD')}`);
  expect(usageLines.sort()).toEqual(['2033-01-01T00:00:00.000Z 3.00', '2033-02-01T00:00:00.000Z 3.00']);
});
