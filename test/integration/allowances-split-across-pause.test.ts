/**
 * The share of a period's allowances a usage stretch gets when a pause lies inside it. A resume gives the paused time
 * back (the period's start and end move later by it), so the fees of a stretch between two immediate changes net to
 * the time it was in force and not paused; its credit bucket share counted the paused time too: the shares of one
 * period summed to more than one whole bucket. API, workflow, time-skipping server and a real Postgres.
 *
 *   2034 Mar 1 `small` ---- Mar 6 change to `large` ---- Mar 11 pause .. Mar 21 resume (the period moves to Mar 11 - Apr 11)
 *   Mar 22: 40 calls on `large` ---- Mar 26 change back to `small`
 *   `large` was in force, not paused, 10 of the period's 31 days: 10/31 of its 31.00 bucket = 10.00 covered
 *   (the fees say the same: +26/31 of the fee at Mar 6, -16/31 at Mar 26). Before: 20/31, 20.00 covered.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'initech', type: 'api.calls', timestamp, properties: { n } });

async function lines(invoice: InvoiceRow): Promise<[string, string][]> {
  const rows = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position');
  return rows.map((line) => [line.kind, Number(line.amount).toFixed(2)]);
}

test('a stretch with a pause inside gets the bucket share of the time it was in force and not paused', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const code of ['small', 'large']) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: code === 'small' ? '31.00' : '62.00',
      usage_grace_period: 'PT1H',
      credit_bucket: '31.00',
      charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'small', start_at: '2034-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const path = `/v1/subscriptions/${subscriptionId}`;

  await stack.skipTo('2034-03-06T00:00:00Z');
  expect((await stack.api.call('POST', `${path}/plan-change`, { plan_code: 'large', effective: 'immediate' }, { 'Idempotency-Key': 'up' })).status).toBe(200);
  await stack.skipTo('2034-03-11T00:00:00Z');
  expect((await stack.api.call('POST', `${path}/pause`, { until: '2034-03-21T00:00:00Z' }, { 'Idempotency-Key': 'pause' })).status).toBe(200);
  await stack.skipTo('2034-03-22T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c1', '2034-03-22T00:00:00Z', 40))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-03-26T00:00:00Z');
  expect((await stack.api.call('POST', `${path}/plan-change`, { plan_code: 'small', effective: 'immediate' }, { 'Idempotency-Key': 'down' })).status).toBe(200);

  const prorations = await eventually(async () => {
    const rows = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'proration' }).orderBy('period_start');
    return rows.length === 2 ? rows : undefined;
  }, 'two proration invoices');
  // Fees: -62.00 x 16/31 = -32.00 and +31.00 x 16/31 = 16.00 (the period is Mar 11 - Apr 11 now); 40 calls on
  // `large`, 10/31 of its 31.00 bucket covering 10.00 of them.
  expect(await lines(prorations[1])).toEqual([
    ['proration', '-32.00'],
    ['proration', '16.00'],
    ['usage', '40.00'],
    ['credit', '-10.00'],
  ]);
});
