/**
 * Two immediate plan changes in one period, A -> B -> A, with the same allowance on both plans: the period's three
 * usage stretches (two proration invoices, then the period invoice) each get their part of it, and the parts must
 * add up to the plan's whole amount. Each stretch rounded amount × its share on its own:
 *
 *   September 2033 (30 days): `a` ---- Sep 11 change to `b` ---- Sep 21 change back to `a` ---- Oct 1
 *   each stretch 10/30 of the month; bucket 0.05: 0.05 / 3 = 0.0167 -> 0.02 three times = 0.06 credited (one cent
 *   more than the month's bucket). Per end: 0.05 - round(0.05 × 2/3) = 0.02, 0.03 - 0.02 = 0.01, 0.02 = 0.05.
 *
 * The same for a charge's min_amount (second test, November 2033): 0.02 billed three times = 0.06 for a 0.05
 * minimum. API, workflow, time-skipping server and a real Postgres.
 */
import { Dec } from '../../domain/money';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

/** Creates `a` and `b` with the same terms, subscribes from `start`, changes to `b` and back on the 11th and 21st. */
async function abaMonth(input: { customer: string; metric: string; start: string; plan: Record<string, unknown>; price: Record<string, unknown> }): Promise<InvoiceRow[]> {
  const { customer: externalId, metric, start } = input;
  expect((await stack.api.call('POST', '/v1/metrics', { code: metric, name: metric, event_type: `api.${metric}`, aggregation: 'sum', property: 'n' })).status).toBe(201);
  for (const code of [`${metric}-a`, `${metric}-b`]) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '0',
      usage_grace_period: 'PT1H',
      ...input.plan,
      charges: [{ metric_code: metric, ...input.price }],
    });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: externalId, name: externalId, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: `${metric}-a`, start_at: `${start}-01T00:00:00Z` });
  const subscriptionId: string = subscription.json.id;
  const path = `/v1/subscriptions/${subscriptionId}`;
  const event = (id: string, day: string) => ({ id, customer: externalId, type: `api.${metric}`, timestamp: `${start}-${day}T00:00:00Z`, properties: { n: 1 } });

  // One unit in each stretch.
  await stack.skipTo(`${start}-05T00:00:00Z`);
  expect((await stack.api.call('POST', '/v1/events', event('e1', '05'))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo(`${start}-11T00:00:00Z`);
  expect((await stack.api.call('POST', `${path}/plan-change`, { plan_code: `${metric}-b`, effective: 'immediate' }, { 'Idempotency-Key': `${metric}-to-b` })).status).toBe(200);
  await stack.skipTo(`${start}-15T00:00:00Z`);
  expect((await stack.api.call('POST', '/v1/events', event('e2', '15'))).json).toMatchObject({ accepted: 1 });
  await stack.skipTo(`${start}-21T00:00:00Z`);
  expect((await stack.api.call('POST', `${path}/plan-change`, { plan_code: `${metric}-a`, effective: 'immediate' }, { 'Idempotency-Key': `${metric}-back-to-a` })).status).toBe(200);
  await stack.skipTo(`${start}-25T00:00:00Z`);
  expect((await stack.api.call('POST', '/v1/events', event('e3', '25'))).json).toMatchObject({ accepted: 1 });

  const prorations = await eventually(async () => {
    const rows = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'proration' }).orderBy('period_start');
    return rows.length === 2 ? rows : undefined;
  }, 'two proration invoices');
  const [year, month] = start.split('-').map(Number);
  const next = new Date(Date.UTC(year, month, 1));
  await stack.skipTo(new Date(next.getTime() + 2 * 3600_000).toISOString());
  const period = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', next).first(),
    'the period invoice after the changes',
  );
  return [...prorations, period];
}

async function amountsOf(invoices: InvoiceRow[], kind: string): Promise<string[]> {
  const amounts: string[] = [];
  for (const invoice of invoices) {
    const rows = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind }).orderBy('position');
    amounts.push(rows.reduce((sum, row) => sum.plus(row.amount), new Dec(0)).toFixed(2));
  }
  return amounts;
}

const total = (amounts: string[]) => amounts.reduce((sum, amount) => sum.plus(amount), new Dec(0)).toFixed(2);

test('A -> B -> A in one period credits exactly the plan\'s 0.05 bucket over its three stretches, not 0.06', async () => {
  const invoices = await abaMonth({ customer: 'umbrella', metric: 'calls', start: '2033-09', plan: { credit_bucket: '0.05' }, price: { price: { model: 'per_unit', unitPrice: '1.00' } } });
  const credits = await amountsOf(invoices, 'credit');
  // Before: ['-0.02', '-0.02', '-0.02'], -0.06.
  expect(total(credits)).toBe('-0.05');
  expect(credits).toEqual(['-0.02', '-0.01', '-0.02']);
});

test('A -> B -> A in one period bills exactly the charge\'s 0.05 minimum over its three stretches, not 0.06', async () => {
  const invoices = await abaMonth({ customer: 'cyberdyne', metric: 'hits', start: '2033-11', plan: {}, price: { price: { model: 'per_unit', unitPrice: '0.001' }, min_amount: '0.05' } });
  const usage = await amountsOf(invoices, 'usage');
  // Before: ['0.02', '0.02', '0.02'], 0.06.
  expect(total(usage)).toBe('0.05');
  expect(usage).toEqual(['0.02', '0.01', '0.02']);
});
