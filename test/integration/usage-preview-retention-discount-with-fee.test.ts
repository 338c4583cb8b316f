/**
 * KNOWN MISMATCH (test.failing): the usage preview (GET /v1/subscriptions/:id/usage) with an accepted retention
 * discount on a plan with a flat fee. The invoice computes ONE discount line over the next period's fee and the usage
 * together (activities/invoicing.ts, discountLine over all its lines, rounded once); the preview computes its discount
 * line over the usage alone (api/routes/usage.ts), and the usage page shows the fee undiscounted ("Your plan fee of
 * 9.99 is billed in advance ... on the same invoice"). docs/usage-page.md says the preview's discount is "computed as
 * the invoice computes it", which holds only for a plan without a fee (usage-preview-retention-discount.test.ts).
 *
 *   2033 (UTC), fee 9.99, 0.01 per call, 30 % off one invoice: Mar 5 accepts the offer, Mar 9 5 calls = 0.05
 *   Preview (Mar 31): usage 0.05, discount -0.02 (30 % of 0.05), subtotal 0.03; page: fee 9.99 + 0.03 = 10.02
 *   Apr 1 invoice:    fee 9.99, usage 0.05, discount -3.01 (30 % of 10.04, rounded once), total 7.03
 * Even a customer who takes 30 % off the fee by hand gets 6.99 + 0.03 = 7.02, a cent off the invoice.
 *
 * Why not fixed here: the preview's `projected` is only the usage part of the invoice, and one discount line over
 * fee + usage has no usage part to the cent. A fix needs a decision on what the preview answers (for example the
 * invoice's discount line whole, so that the shown fee + `projected.subtotal` is the invoice's total, or the fee and
 * its discount as projected lines too) and on the page's fee note; either changes the API answer (and the contract's
 * description). When fixed, this test passes: make it a plain `test`.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { toDecimal } from '../../domain/money';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertPlan } from '../support/fixtures';

const stack = useApiStack();

test.failing('with a retention discount on a plan with a fee, the shown fee and projected usage charges add up to the invoice', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'rf_calls', name: 'Calls', event_type: 'rf.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  await insertPlan(stack.db, {
    code: 'retained-fee',
    billing_interval: 'P1M',
    flat_fee: '9.99',
    charges: [{ metricCode: 'rf_calls', price: { model: 'per_unit', unitPrice: '0.01' } }] as never,
    settings: { retentionOffer: { percentOff: '30', periods: 1, expiresAfter: 'P7D' } },
  });
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'retained-fee', name: 'Retained', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscriptionId: string = (await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'retained-fee', start_at: '2033-03-01T00:00:00Z' })).json.id;

  await stack.skipTo('2033-03-05T00:00:00Z');
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'too expensive' })).json).toMatchObject({ status: 'retention_offered' });
  expect((await stack.api.call('POST', `/v1/subscriptions/${subscriptionId}/retention/accept`, {})).status).toBe(200);
  await stack.skipTo('2033-03-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { id: 'c1', customer: 'retained-fee', type: 'rf.calls', timestamp: '2033-03-09T00:00:00Z', properties: { n: 5 } })).json).toMatchObject({ accepted: 1 });

  await stack.skipTo('2033-03-31T22:00:00Z');
  const projected = (await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`)).json.projected;
  await stack.skipTo('2033-04-01T02:00:00Z');
  const april = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2033-04-01T00:00:00Z').whereNotNull('number').first(),
    "April's invoice",
  );
  const discount = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april.id, kind: 'discount' }).first();
  expect(toDecimal(String(discount!.amount)).toFixed(2)).toBe('-3.01');
  expect(toDecimal(String(april.total)).toFixed(2)).toBe('7.03');
  // What the page shows (the plan's fee, then the projected usage charges) is what the invoice bills.
  expect(toDecimal('9.99').plus(toDecimal(projected.subtotal)).toFixed(2)).toBe('7.03'); // today: 10.02
});
