/**
 * Known, left test.failing: usage accepted for a customer with no subscription yet, stamped before the start of the
 * subscription created afterwards, is billed by nothing and shown nowhere. Ingestion keeps a customer's events while
 * they have no subscription (one may start back-dated and bill them: docs/usage-events.md), but nothing judges them
 * once the subscription exists: no period covers their time, the late-usage list starts at the first closure, the
 * preview at the open period. Here 40 calls (40.00) are accepted (200) and lost.
 *
 * The fix is a product decision, bigger than this change: refuse usage of a customer without a subscription (breaks
 * the documented back-dating), or, when a subscription is created, answer (or list for ops) the customer's stored
 * events its start leaves uncovered so it can be back-dated. This test asks only the house rule, whichever way:
 * an accepted event is billed, or visibly pending. API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

test.failing('usage stored before any subscription, stamped before the one created later, is billed or visibly pending', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'nf_calls', name: 'Calls', event_type: 'nf.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/plans', { code: 'nf', name: 'NF', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges: [{ metric_code: 'nf_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] })).status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'nf', name: 'NF', currency: 'USD', payment_method: 'pm_sandbox_ok' });

  // 2036: May 5 40 calls sent (no subscription yet: kept) | May 6 a subscription starting May 10 | Jun 10 its first
  // period closes: 0 calls billed, nothing late.
  await stack.skipTo('2036-05-05T12:00:00Z');
  const sent = await stack.api.call('POST', '/v1/events', { id: 'early', customer: 'nf', type: 'nf.calls', timestamp: '2036-05-05T00:00:00Z', properties: { n: 40 } });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'nf', start_at: '2036-05-10T00:00:00Z' });
  await stack.skipTo('2036-06-11T00:00:00Z');
  const invoice = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscription.json.id }).andWhere('period_start', new Date('2036-05-10T00:00:00Z')).first(), 'the first period invoice');

  if (sent.json?.accepted !== 1) return; // refused at ingestion: nothing owed
  const billed = (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind: 'usage' })).reduce((sum, line) => sum + Number(line.quantity), 0);
  const late = (await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/late-usage`)).json.data.map((event: { id: string }) => event.id);
  expect({ billed, late }).not.toEqual({ billed: 0, late: [] });
});
