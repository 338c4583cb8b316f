/**
 * What the customer is shown for a paused subscription and for one cancelling at its period's end, against what the
 * invoice then bills and draws. API, workflow, time-skipping server and a real Postgres.
 *
 * Paused: a resume gives the paused time back (the period's end moves later by it) and the period's invoice bills
 * the usage sent while paused (usageWhilePaused 'bill'), also past the end the row still shows until the resume.
 * The projection stopped at that end (100.00 shown, 200.00 billed), and the wallet counted no usage of a paused
 * subscription at all (500.00 available shown, 300.00 left after the invoice's draw).
 *
 * Cancelling at the period's end: the closing invoice bills the period's usage and the wallet pays it, but the
 * wallet counted no usage of a subscription pending cancellation (500.00 shown, 400.00 left).
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertPlan } from '../support/fixtures';

const stack = useApiStack();

async function customerOn(code: string, settings: Record<string, unknown>, start: string) {
  expect((await stack.api.call('POST', '/v1/metrics', { code: `${code}_calls`, name: 'Calls', event_type: `${code}.calls`, aggregation: 'sum', property: 'n' })).status).toBe(201);
  await insertPlan(stack.db, { code, billing_interval: 'P1M', flat_fee: '0', charges: [{ metricCode: `${code}_calls`, price: { model: 'per_unit', unitPrice: '0.25' } }] as never, settings });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: code, name: code, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: code, start_at: start });
  expect((await stack.api.call('POST', `/v1/customers/${customer.json.id}/wallet/grants`, { amount: '500.00', source: 'promotional', effective_at: start })).status).toBe(201);
  const send = async (id: string, timestamp: string) =>
    expect((await stack.api.call('POST', '/v1/events', { id, customer: code, type: `${code}.calls`, timestamp, properties: { n: 400 } })).json).toMatchObject({ accepted: 1 });
  const shown = async () => ({
    subtotal: (await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/usage`)).json.projected.subtotal,
    available: (await stack.api.call('GET', `/v1/customers/${customer.json.id}/wallet`)).json.available,
  });
  const billed = async (kind: string) => {
    const invoice = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscription.json.id, kind }).andWhere((q) => (kind === 'period' ? q.whereNot('period_start', start) : q)).first(), `the ${kind} invoice`);
    const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
    const balance = (await stack.api.call('GET', `/v1/customers/${customer.json.id}/wallet`)).json.balance;
    return { lines: lines.map((line) => [line.kind, Number(line.amount).toFixed(2)]), balance };
  };
  return { subscriptionId: subscription.json.id as string, send, shown, billed };
}

test('paused past the shown period end: the usage sent meanwhile is projected and pending as the invoice bills it', async () => {
  // 2031: Mar 1 start | Mar 9 400 calls | Mar 20 pause until Apr 10 | Apr 5 400 calls (while paused) | Apr 6 shown
  // Apr 10 resume: the period ends 21 days later, Apr 22 | its invoice: 800 calls = 200.00, drawn from the wallet.
  const { subscriptionId, send, shown, billed } = await customerOn('pz', { usageWhilePaused: 'bill' }, '2031-03-01T00:00:00Z');
  await stack.skipTo('2031-03-10T00:00:00Z');
  await send('p1', '2031-03-09T00:00:00Z');
  await stack.skipTo('2031-03-20T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/pause`, { until: '2031-04-10T00:00:00Z' }, { 'Idempotency-Key': 'pause' })).status).toBe(200);
  await stack.skipTo('2031-04-05T00:00:00Z');
  await send('p2', '2031-04-05T00:00:00Z');
  await stack.skipTo('2031-04-06T00:00:00Z');
  const whilePaused = await shown();
  await stack.skipTo('2031-04-23T02:00:00Z');
  expect(await billed('period')).toEqual({ lines: [['usage', '200.00'], ['credit', '-200.00']], balance: '300.00' });
  expect(whilePaused).toEqual({ subtotal: '200.00', available: '300.00' });
});

test('cancelling at the period end: the usage the closing invoice draws is pending on the wallet', async () => {
  // 2032: Mar 1 start | Mar 9 400 calls = 100.00 | Mar 20 cancel at the period end | Apr 1 closing invoice draws 100.00.
  const { subscriptionId, send, shown, billed } = await customerOn('pc', {}, '2032-03-01T00:00:00Z');
  await stack.skipTo('2032-03-10T00:00:00Z');
  await send('c1', '2032-03-09T00:00:00Z');
  await stack.skipTo('2032-03-20T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'leaving' })).json).toMatchObject({ status: 'pending_cancellation' });
  const cancelling = await shown();
  await stack.skipTo('2032-04-01T02:00:00Z');
  expect(await billed('closing')).toEqual({ lines: [['usage', '100.00'], ['credit', '-100.00']], balance: '400.00' });
  expect(cancelling).toEqual({ subtotal: '100.00', available: '400.00' });
});
