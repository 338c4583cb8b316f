/**
 * Seats are prorated over the billing period. An immediate plan change splits the period into two usage stretches,
 * each closed and invoiced on its own; each stretch must bill its seats for its share of the period. Before, each
 * stretch prorated over its own length, as if it were a whole period: 3 seats kept all September with a change on
 * Sep 11 billed 3 seats in full on the proration invoice and again in full on October's invoice (60.00, not 30.00).
 * API, workflow, time-skipping server and a real Postgres.
 */
import { Dec } from '../../domain/money';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

async function seatLines(invoice: InvoiceRow): Promise<[string, string][]> {
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind: 'usage' }).orderBy('position');
  return lines.map((line) => [Number(line.quantity).toFixed(6), Number(line.amount).toFixed(2)]);
}

test('an immediate plan change bills each stretch its share of the seats, not the whole period twice', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'seats', name: 'Seats', event_type: 'seats.set', aggregation: 'prorated_latest', property: 'count' })).status).toBe(201);
  for (const code of ['seats-basic', 'seats-plus']) {
    const plan = await stack.api.call('POST', '/v1/plans', {
      code,
      name: code,
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '0',
      usage_grace_period: 'PT1H',
      charges: [{ metric_code: 'seats', price: { model: 'per_unit', unitPrice: '10.00' } }],
    });
    expect(plan.status).toBe(201);
  }
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'initech', name: 'Initech', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'seats-basic', start_at: '2034-09-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  // September (30 days): 3 seats from Sep 1, kept all month. Sep 11 (a third gone): immediate change to seats-plus.
  //   proration invoice: 3 seats × 10/30 of the month = 1 seat -> 10.00
  //   October's invoice: 3 seats × 20/30 of the month = 2 seats -> 20.00 (September: 30.00, as without the change)
  await stack.skipTo('2034-09-05T00:00:00Z');
  const seats = { id: 'seats-1', customer: 'initech', type: 'seats.set', timestamp: '2034-09-01T00:00:00Z', properties: { count: 3 } };
  expect((await stack.api.call('POST', '/v1/events', seats)).json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2034-09-11T00:00:00Z');
  const changed = await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/plan-change`, { plan_code: 'seats-plus', effective: 'immediate' }, { 'Idempotency-Key': 'initech-up' });
  expect(changed.status).toBe(200);

  const proration = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'proration' }).first(), 'the proration invoice');
  await stack.skipTo('2034-10-01T02:00:00Z');
  const october = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', new Date('2034-10-01T00:00:00Z')).first(),
    "October's invoice",
  );
  // The change lands a moment after Sep 11 00:00 (workflow time), so the split is 1.000001 / 1.999999 seats.
  expect({ proration: await seatLines(proration), october: await seatLines(october) }).toEqual({
    proration: [[expect.stringMatching(/^1\.00000\d$/), '10.00']],
    october: [[expect.stringMatching(/^1\.99999\d$|^2\.000000$/), '20.00']],
  });
  // Counted in whole seconds to the period's end, the two stretches add up to the 3 seats of the month exactly.
  const quantities = await stack.db<InvoiceLineRow>('invoice_lines').whereIn('invoice_id', [proration.id, october.id]).andWhere({ kind: 'usage' }).select('quantity');
  expect(quantities.reduce((sum, line) => sum.plus(line.quantity), new Dec(0)).toString()).toBe('3');
});
