/**
 * Usage accepted for a customer with no subscription yet, stamped before the start of the subscription created
 * afterwards, is billed by nothing (no period covers its time). Ingestion keeps a customer's events while they have
 * no subscription (one may start back-dated and bill them: docs/usage-events.md), so it is not refused; it is made
 * visibly pending instead: the subscription's 201 answer says its start leaves it unbilled (`uncovered_usage`), and
 * GET /v1/customers/:id/uncovered-usage lists it with its reason, apart from late usage (a re-rating bills that).
 * Before, 40 calls (40.00) were accepted (200), billed 0 and shown nowhere. API, workflow, time-skipping server and
 * a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

test('usage stored before any subscription, stamped before the one created later, is visibly pending', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'nf_calls', name: 'Calls', event_type: 'nf.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/plans', { code: 'nf', name: 'NF', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H', charges: [{ metric_code: 'nf_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] })).status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'nf', name: 'NF', currency: 'USD', payment_method: 'pm_sandbox_ok' });

  // 2036: May 5 40 calls sent (no subscription yet: kept) | May 6 a subscription starting May 10 (its answer says the
  // 40 calls are left unbilled) | Jun 10 its first period closes: 0 calls billed | Jun 11 7 calls stamped May 20 sent
  // (late: a re-rating bills them).
  await stack.skipTo('2036-05-05T12:00:00Z');
  const sent = await stack.api.call('POST', '/v1/events', { id: 'early', customer: 'nf', type: 'nf.calls', timestamp: '2036-05-05T00:00:00Z', properties: { n: 40 } });
  expect(sent.json).toMatchObject({ accepted: 1 });
  await stack.skipTo('2036-05-06T00:00:00Z');
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'nf', start_at: '2036-05-10T00:00:00Z' });
  expect(subscription.status).toBe(201);
  expect(subscription.json.uncovered_usage).toEqual({ events: 1, earliest: '2036-05-05T00:00:00.000Z' });

  await stack.skipTo('2036-06-11T00:00:00Z');
  const invoice = await eventually(async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscription.json.id }).andWhere('period_start', new Date('2036-05-10T00:00:00Z')).first(), 'the first period invoice');
  const billed = (await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind: 'usage' })).reduce((sum, line) => sum + Number(line.quantity), 0);
  expect(billed).toBe(0);
  expect((await stack.api.call('POST', '/v1/events', { id: 'late', customer: 'nf', type: 'nf.calls', timestamp: '2036-05-20T00:00:00Z', properties: { n: 7 } })).json).toMatchObject({ accepted: 1 });

  const late = (await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/late-usage`)).json.data.map((event: { id: string }) => event.id);
  const uncovered = await stack.api.call('GET', `/v1/customers/${customer.json.id}/uncovered-usage`);
  expect(uncovered.status).toBe(200);
  expect({ late, uncovered: uncovered.json }).toEqual({
    late: ['late'],
    uncovered: {
      data: [{ id: 'early', type: 'nf.calls', timestamp: '2036-05-05T00:00:00.000Z', received_at: expect.any(String), properties: { n: 40 }, reason: 'before_first_subscription' }],
      totals: [{ type: 'nf.calls', events: 1, earliest: '2036-05-05T00:00:00.000Z', latest: '2036-05-05T00:00:00.000Z' }],
      has_more: false,
      next_cursor: expect.any(String),
    },
  });
});
