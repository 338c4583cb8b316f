/**
 * A cost_plus price on a plain charge (a metric without group_by, one cost table entry `{}`): the period invoice
 * bills the closed usage at the cost of its tables × (1 + markup), as the preview shows it, not 0 as "uncosted".
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { createTestApiKey } from '../support/api-keys';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

test('a plain cost_plus charge bills its closed usage at cost × (1 + markup) on the period invoice', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'images', name: 'Images', event_type: 'image.generated', aggregation: 'count' })).status).toBe(201);
  const finance = (await createTestApiKey(stack.db, 'finance')).headers;
  expect((await stack.api.call('POST', '/v1/metrics/images/cost-tables', { currency: 'USD', effective_from: '2033-03-01T00:00:00Z', costs: [{ match: {}, unit_cost: '0.037' }] }, finance)).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics/images/cost-tables', { currency: 'USD', effective_from: '2033-03-15T00:00:00Z', costs: [{ match: {}, unit_cost: '0.041' }] }, finance)).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'images-at-cost', name: 'Images at cost plus 30 %', currency: 'USD', billing_interval: 'P1M', flat_fee: '0',
    charges: [{ metric_code: 'images', display_name: 'Images', price: { model: 'cost_plus', markup: '0.3' } }],
  });
  expect(plan.status).toBe(201);
  const acme = await stack.api.call('POST', '/v1/customers', { external_id: 'acme', name: 'Acme', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const sub = await stack.api.call('POST', '/v1/subscriptions', { customer_id: acme.json.id, plan_code: 'images-at-cost', start_at: '2033-03-01T00:00:00Z' });
  expect(sub.status).toBe(201);

  // Timeline (UTC, 2033):
  //   Mar 5    4 images at 0.037 (table of Mar 1)
  //   Mar 20   3 images at 0.041 (table of Mar 15)
  //   Apr 1    INV  Images: (4 × 0.037 + 3 × 0.041) = 0.271 × 1.3 = 0.3523 -> 0.35 (docs/pricing.md's rounding example)
  const image = (id: string, timestamp: string) => ({ id, customer: 'acme', type: 'image.generated', timestamp, properties: {} });
  await stack.skipTo('2033-03-06T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: ['a', 'b', 'c', 'd'].map((id) => image(id, '2033-03-05T00:00:00Z')) })).json).toMatchObject({ accepted: 4 });
  await stack.skipTo('2033-03-21T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: ['e', 'f', 'g'].map((id) => image(id, '2033-03-20T00:00:00Z')) })).json).toMatchObject({ accepted: 3 });

  const live = await stack.api.call('GET', `/v1/subscriptions/${sub.json.id}/usage`);
  expect(live.json.projected.lines.map((line: { description: string; amount: string }) => [line.description, line.amount])).toEqual([['Images', '0.35']]);

  await stack.skipTo('2033-04-02T00:00:00Z');
  const april = await stack.db<InvoiceRow>('invoices').where({ subscription_id: sub.json.id, kind: 'period' }).andWhere('period_start', '2033-04-01T00:00:00Z').first();
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april!.id, kind: 'usage' }).orderBy('position');
  expect(lines.map((line) => [line.description, line.amount])).toEqual([['Images', '0.350000000000']]);
  expect(lines[0].breakdown).toMatchObject({ model: 'cost_plus', markup: '0.3', cost: '0.271', uncostedQuantity: '0' });
  expect(april!.total).toBe('0.350000000000');

  await stack.env.client.workflow.getHandle(`subscription:${sub.json.id}`).terminate('test done');
});
