/**
 * A plan's credit bucket and minimum commitment are per billing period. An immediate plan change splits the period
 * into two usage stretches, each invoiced on its own (the proration invoice, then the period invoice); each gets the
 * share of its plan's allowances that its part of the period is. Before, each got all of them: a change on day 11 of
 * 30 charged a whole 30.00 commitment for 10 days and a whole 60.00 one for the other 20 (and switching back and
 * forth granted a fresh bucket each time). API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'soylent', type: 'api.calls', timestamp, properties: { n } });

async function usageLines(invoice: InvoiceRow): Promise<[string, string][]> {
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).whereIn('kind', ['usage', 'credit', 'commitment_true_up']).orderBy('position');
  return lines.map((line) => [line.kind, Number(line.amount).toFixed(2)]);
}

test('an immediate plan change splits the credit bucket and the minimum commitment by the time each plan was in force', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const [code, bucket, commitment] of [['small', '6.00', '30.00'], ['large', '12.00', '60.00']]) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '0',
      usage_grace_period: 'PT1H',
      credit_bucket: bucket,
      minimum_commitment: commitment,
      charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'soylent', name: 'Soylent', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'small', start_at: '2034-09-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  // September has 30 days. Sep 5: 4 calls on `small`. Sep 11 (a third of the month gone): change to `large`.
  // Sep 20: 50 calls on `large`.
  await stack.skipTo('2034-09-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c1', '2034-09-05T00:00:00Z', 4))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-09-11T00:00:00Z');
  const changed = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'large', effective: 'immediate' }, { 'Idempotency-Key': 'soylent-up' });
  expect(changed.status).toBe(200);
  await stack.skipTo('2034-09-20T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c2', '2034-09-20T00:00:00Z', 50))).json).toMatchObject({ accepted: 1 });

  // The first stretch: a third of `small`'s 6.00 bucket and 30.00 commitment: 4.00 of usage, 2.00 covered, and a
  // 6.00 true-up to 10.00 (before: 4.00 covered and a 26.00 true-up).
  const proration = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'proration' }).first(), 'the proration invoice');
  expect(await usageLines(proration)).toEqual([
    ['usage', '4.00'],
    ['credit', '-2.00'],
    ['commitment_true_up', '6.00'],
  ]);

  // The second stretch: two thirds of `large`'s 12.00 bucket and 60.00 commitment: 50.00 of usage, 8.00 covered,
  // and no true-up (before: 12.00 covered and a 10.00 true-up to 60.00).
  await stack.skipTo('2034-10-01T02:00:00Z');
  const october = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', new Date('2034-10-01T00:00:00Z')).first(),
    "October's invoice",
  );
  expect(await usageLines(october)).toEqual([
    ['usage', '50.00'],
    ['credit', '-8.00'],
  ]);
});
