/**
 * A charge's `min_amount` bounds what the charge bills "for the period" (docs/pricing.md "Minimum and maximum per
 * charge"). An immediate plan change splits the period into two usage stretches, each invoiced on its own (the
 * proration invoice, then the period invoice), and the plan's credit bucket and commitment are cut by the share of
 * the period each stretch is (domain/allowances.ts). The charge minimum was not: each stretch billed it whole.
 *
 *   September (30 days), plan `basic` (calls at 1.00, min 30.00), changed on Sep 11 to `plus` (calls at 1.00,
 *   min 60.00). 4 calls before the change, 20 after.
 *     stretch 1 (10/30 of the month): max(4.00, 30.00 × 1/3 = 10.00)  = 10.00   billed before: 30.00
 *     stretch 2 (20/30 of the month): max(20.00, 60.00 × 2/3 = 40.00) = 40.00   billed before: 60.00
 *   The month's minimum billed: 90.00, more than either plan's whole minimum; by share it would be 50.00.
 *
 * The same holds for a charge's `included_units` ("free units per period", domain/rating.ts Charge): each stretch gets
 * all of them, so a change mid-period doubled the month's free units (second test).
 *
 * Rating now cuts both to the stretch's share (rating.ts RatingInput.periodShare), as every reading of the stretch
 * does. API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'initech', type: 'api.calls', timestamp, properties: { n } });

async function usageLines(invoice: InvoiceRow): Promise<[string, string][]> {
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id }).whereIn('kind', ['usage', 'credit', 'commitment_true_up']).orderBy('position');
  return lines.map((line) => [line.kind, Number(line.amount).toFixed(2)]);
}

test('an immediate plan change bills each stretch its share of the charge minimum, not the whole minimum twice', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const [code, minimum] of [['basic', '30.00'], ['plus', '60.00']]) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '0',
      usage_grace_period: 'PT1H',
      charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '1.00' }, min_amount: minimum }],
    });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'basic', start_at: '2034-09-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  await stack.skipTo('2034-09-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c1', '2034-09-05T00:00:00Z', 4))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-09-11T00:00:00Z');
  const changed = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'plus', effective: 'immediate' }, { 'Idempotency-Key': 'initech-up' });
  expect(changed.status).toBe(200);
  await stack.skipTo('2034-09-20T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('c2', '2034-09-20T00:00:00Z', 20))).json).toMatchObject({ accepted: 1 });

  const proration = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'proration' }).first(), 'the proration invoice');
  await stack.skipTo('2034-10-01T02:00:00Z');
  const october = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', new Date('2034-10-01T00:00:00Z')).first(),
    "October's invoice",
  );
  // Before: [['usage', '30.00']] and [['usage', '60.00']].
  expect([await usageLines(proration), await usageLines(october)]).toEqual([[['usage', '10.00']], [['usage', '40.00']]]);
});

test('an immediate plan change gives each stretch its share of the included units, not all of them twice', async () => {
  // November (30 days; the stack's clock only moves forward, so after the first test's September), `free300` (calls at 1.00, 300 included a month) on both sides of a change on Nov 11
  // (to a second version-like plan `free300b` with the same terms); 200 calls before, 200 after: 400 calls, 300 free.
  //   stretch 1: 300 × 1/3 = 100 included, 200 - 100 = 100 × 1.00 = 100.00   billed before: 0.00 (200 ≤ 300)
  //   stretch 2: 300 × 2/3 = 200 included, 200 - 200 =   0           =   0.00   billed before: 0.00
  // The month bills 0.00 for 400 calls with 300 included; by share 100.00.
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'hits', name: 'Hits', event_type: 'api.hits', aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const code of ['free300', 'free300b']) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '0',
      usage_grace_period: 'PT1H',
      charges: [{ metric_code: 'hits', price: { model: 'per_unit', unitPrice: '1.00' }, included_units: '300' }],
    });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'hooli', name: 'Hooli', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'free300', start_at: '2034-11-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;
  const hits = (id: string, timestamp: string, n: number) => ({ id, customer: 'hooli', type: 'api.hits', timestamp, properties: { n } });

  await stack.skipTo('2034-11-05T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', hits('h1', '2034-11-05T00:00:00Z', 200))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-11-11T00:00:00Z');
  const changed = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'free300b', effective: 'immediate' }, { 'Idempotency-Key': 'hooli-switch' });
  expect(changed.status).toBe(200);
  await stack.skipTo('2034-11-20T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', hits('h2', '2034-11-20T00:00:00Z', 200))).json).toMatchObject({ accepted: 1 });

  const proration = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'proration' }).first(), 'the proration invoice');
  await stack.skipTo('2034-12-01T02:00:00Z');
  const december = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', new Date('2034-12-01T00:00:00Z')).first(),
    "December's invoice",
  );
  // Before: [['usage', '0.00']] and [['usage', '0.00']].
  expect([await usageLines(proration), await usageLines(december)]).toEqual([[['usage', '100.00']], [['usage', '0.00']]]);
});
