/**
 * The usage preview (GET /v1/subscriptions/:id/usage, what the customer usage page shows as "projected usage
 * charges": docs/usage-page.md) after a threshold invoice (progressive billing, docs/pricing.md). The period's
 * invoice credits what the threshold invoice billed, so the usage part of the next invoice is only the rest; the
 * preview kept projecting the whole stretch, as if the customer would be billed for it again. API, workflow,
 * time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { usageThresholdReachedSignal } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const calls = (id: string, timestamp: string, n: number) => ({ id, customer: 'umbrella', type: 'api.calls', timestamp, properties: { n } });

test('after a threshold invoice the projected usage charges are what the period invoice will still bill', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.calls', aggregation: 'sum', property: 'n' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'progressive-preview', name: 'Progressive', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', usage_grace_period: 'PT1H',
    charges: [{ metric_code: 'calls', price: { model: 'per_unit', unitPrice: '0.25' } }],
    usage_thresholds: { amounts: ['100.00'] },
  });
  expect(plan.status).toBe(201);
  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'umbrella', name: 'Umbrella', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'progressive-preview', start_at: '2032-03-01T00:00:00Z' });
  const subscriptionId: string = subscription.json.id;

  // Timeline (UTC, 2032), calls at 0.25, threshold 100.00: Mar 10 450 calls = 112.50 -> threshold invoice 112.50.
  // Mar 20 40 calls = 10.00 more. The April invoice bills 122.50 of usage - 112.50 already billed = 10.00.
  await stack.skipTo('2032-03-10T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('u1', '2032-03-09T00:00:00Z', 450))).json).toMatchObject({ accepted: 1 });
  await stack.env.client.workflow.getHandle(`subscription:${subscriptionId}`).signal(usageThresholdReachedSignal, { thresholdIndex: 1, accrued: '112.50' });
  await eventually(
    async () => (await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'threshold', status: 'paid' }).first()) ?? null,
    'the paid threshold invoice',
  );
  await stack.skipTo('2032-03-20T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', calls('u2', '2032-03-19T00:00:00Z', 40))).json).toMatchObject({ accepted: 1 });

  const preview = await stack.api.call('GET', `/v1/subscriptions/${subscriptionId}/usage`);
  expect(preview.status).toBe(200);
  const projected = { usage_total: preview.json.projected.usage_total, subtotal: preview.json.projected.subtotal };

  await stack.skipTo('2032-04-01T02:00:00Z');
  const april = await eventually(
    async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptionId, kind: 'period' }).andWhere('period_start', '2032-04-01T00:00:00Z').first(),
    "April's invoice",
  );
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april.id }).whereNot({ kind: 'flat_fee' });
  const billedForUsage = lines.reduce((sum, line) => sum + Math.round(Number(line.amount) * 100), 0) / 100; // test-side check only
  expect(billedForUsage.toFixed(2)).toBe('10.00');
  // The preview said the same as the invoice then billed for the same usage.
  expect(projected).toEqual({ usage_total: '122.50', subtotal: '10.00' });
});
