/**
 * The usage preview (GET /v1/subscriptions/:id/usage) with an accepted retention discount on a plan with a flat fee.
 * The invoice computes ONE discount line over the next period's fee and the usage together (activities/invoicing.ts,
 * discountLine over all its lines, rounded once); the preview carries that line whole (store/offers.ts
 * `previewedRetentionDiscount`, over the fee the invoice will bill: `projected.fee`), so the page's fee +
 * `projected.subtotal` is the invoice's total. Before, the preview took the discount off the usage alone.
 *
 *   2033 (UTC), fee 9.99, 0.01 per call, 30 % off one invoice: Mar 5 accepts the offer, Mar 9 5 calls = 0.05
 *   Preview (Mar 31): fee 9.99, usage 0.05, discount -3.01 (30 % of 10.04), subtotal -2.96; page: 9.99 - 2.96 = 7.03
 *   Apr 1 invoice:    fee 9.99, usage 0.05, discount -3.01, total 7.03 (before: preview 0.05 - 0.02, page 10.02)
 *   A second customer also schedules a change to a plan with a fee of 19.99 for Apr 1 (the invoice bills that fee):
 *   preview fee 19.99, discount -6.01 (30 % of 20.04), subtotal -5.96; Apr 1 invoice 19.99 + 0.05 - 6.01 = 14.03
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { toDecimal } from '../../domain/money';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';
import { insertPlan } from '../support/fixtures';

const stack = useApiStack();

/** A customer on `retained-fee` from Mar 1 who accepts 30 % off on Mar 5 and sends 5 calls on Mar 9. */
async function retainedCustomer(name: string): Promise<string> {
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: name, name, currency: 'USD', payment_method: 'pm_sandbox_ok' });
  return (await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'retained-fee', start_at: '2033-03-01T00:00:00Z' })).json.id;
}

async function aprilInvoice(subscriptionId: string): Promise<{ total: string; discount: string }> {
  const april = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2033-04-01T00:00:00Z').whereNotNull('number').first(),
    "April's invoice",
  );
  const discount = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april.id, kind: 'discount' }).first();
  return { total: toDecimal(String(april.total)).toFixed(2), discount: toDecimal(String(discount!.amount)).toFixed(2) };
}

/** What the page shows: the fee the invoice bills, then the projected usage charges. */
const shownTotal = (projected: { fee: string; subtotal: string }): string => toDecimal(projected.fee).plus(toDecimal(projected.subtotal)).toFixed(2);

test('with a retention discount on a plan with a fee, the shown fee and projected usage charges add up to the invoice', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'rf_calls', name: 'Calls', event_type: 'rf.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = (code: string, fee: string) => ({
    code,
    billing_interval: 'P1M',
    flat_fee: fee,
    charges: [{ metricCode: 'rf_calls', price: { model: 'per_unit', unitPrice: '0.01' } }] as never,
    settings: { retentionOffer: { percentOff: '30', periods: 1, expiresAfter: 'P7D' } },
  });
  await insertPlan(stack.db, plan('retained-fee', '9.99'));
  await insertPlan(stack.db, plan('retained-fee-plus', '19.99'));
  const staying = await retainedCustomer('retained-fee');
  const moving = await retainedCustomer('retained-fee-moving');

  await stack.skipTo('2033-03-05T00:00:00Z');
  for (const id of [staying, moving]) {
    expect((await stack.api.call('POST', `/v1/subscriptions/${id}/cancel`, { at: 'period_end', reason: 'too expensive' })).json).toMatchObject({ status: 'retention_offered' });
    expect((await stack.api.call('POST', `/v1/subscriptions/${id}/retention/accept`, {})).status).toBe(200);
  }
  expect((await stack.api.call('POST', `/v1/subscriptions/${moving}/plan-change`, { plan_code: 'retained-fee-plus', effective: 'period_end' })).status).toBe(200);
  await stack.skipTo('2033-03-10T00:00:00Z');
  for (const customer of ['retained-fee', 'retained-fee-moving']) {
    expect((await stack.api.call('POST', '/v1/events', { id: `c1-${customer}`, customer, type: 'rf.calls', timestamp: '2033-03-09T00:00:00Z', properties: { n: 5 } })).json).toMatchObject({ accepted: 1 });
  }

  await stack.skipTo('2033-03-31T22:00:00Z');
  const stayingPreview = (await stack.api.call('GET', `/v1/subscriptions/${staying}/usage`)).json.projected;
  const movingPreview = (await stack.api.call('GET', `/v1/subscriptions/${moving}/usage`)).json.projected;
  await stack.skipTo('2033-04-01T02:00:00Z');

  expect(await aprilInvoice(staying)).toEqual({ discount: '-3.01', total: '7.03' });
  expect(stayingPreview).toMatchObject({ fee: '9.99', subtotal: '-2.96' }); // before: no fee, subtotal 0.03 (0.05 - 0.02)
  expect(stayingPreview.lines).toContainEqual(expect.objectContaining({ kind: 'discount', amount: '-3.01' }));
  expect(shownTotal(stayingPreview)).toBe('7.03'); // before: 9.99 + 0.03 = 10.02

  // A change scheduled for the period's end: the invoice bills the new plan's fee, and the discount covers that one.
  expect(await aprilInvoice(moving)).toEqual({ discount: '-6.01', total: '14.03' });
  expect(movingPreview).toMatchObject({ fee: '19.99', subtotal: '-5.96' });
  expect(shownTotal(movingPreview)).toBe('14.03');
});
