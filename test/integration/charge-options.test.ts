/**
 * Charge options end to end (issue 14 point 6): per-charge minimum, first tier fee at zero usage, free events
 * on a percentage charge, and a commitment that counts the flat fee, through the real API, workflow,
 * activities and Postgres on a time-skipping Temporal server; and their validation at plan creation.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { cancelSubscriptionUpdate } from '../../workflows/definitions';
import { useApiStack } from '../support/api-stack';

const stack = useApiStack();

const plan = (code: string, extra: Record<string, unknown>) => ({ code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '30.00', ...extra });

test('charge options that do not fit are refused with invalid_charge_options and nothing is stored', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'call', aggregation: 'count' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'tokens', name: 'Tokens', event_type: 'tok', aggregation: 'sum', property: 'n', group_by: ['model'] })).status).toBe(201);
  const perUnit = { model: 'per_unit', unitPrice: '0.10' };

  const refused = [
    plan('bad-bounds', { charges: [{ metric_code: 'calls', price: perUnit, min_amount: '10', max_amount: '5' }] }),
    plan('bad-digits', { charges: [{ metric_code: 'calls', price: perUnit, min_amount: '1.005' }] }),
    plan('bad-first-tier', { charges: [{ metric_code: 'calls', price: perUnit, first_tier_fee_at_zero_usage: true }] }),
    plan('bad-dimensional', { charges: [{ metric_code: 'tokens', dimensions: { prices: [], default_price: perUnit }, min_amount: '1' }] }),
  ];
  for (const body of refused) {
    const response = await stack.api.call('POST', '/v1/plans', body);
    expect(response).toMatchObject({ status: 422, json: { code: 'invalid_charge_options' } });
  }
  // Shape errors are caught by the schema; a fee-counting commitment needs a commitment.
  expect(await stack.api.call('POST', '/v1/plans', plan('bad-free', { charges: [{ metric_code: 'calls', price: { model: 'percentage', rate: '0.02', freeEvents: '1.5' } }] }))).toMatchObject({
    status: 422,
    json: { code: 'validation_failed' },
  });
  expect(await stack.api.call('POST', '/v1/plans', plan('bad-block', { charges: [{ metric_code: 'calls', price: { model: 'volume', tiers: [{ upTo: null, unitPrice: '1', blockSize: '0' }] } }] }))).toMatchObject({
    status: 422,
    json: { code: 'validation_failed' },
  });
  expect(await stack.api.call('POST', '/v1/plans', plan('bad-commitment', { commitment_includes_fees: true }))).toMatchObject({ status: 422, json: { code: 'validation_failed' } });
  expect(await stack.db('plans').where('code', 'like', 'bad-%').count<{ count: string }[]>('* as count')).toEqual([{ count: '0' }]);
});

test('a period billed with a charge minimum, a first-tier fee at zero usage, free events and a commitment counting the flat fee', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'api_calls', name: 'API calls', event_type: 'api.call', aggregation: 'count' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'storage_gb', name: 'Storage', event_type: 'storage', aggregation: 'sum', property: 'gb' })).status).toBe(201);
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'payments', name: 'Payments', event_type: 'payment', aggregation: 'count', property: 'amount' })).status).toBe(201);

  const created = await stack.api.call(
    'POST',
    '/v1/plans',
    plan('options', {
      minimum_commitment: '100.00',
      commitment_includes_fees: true,
      charges: [
        { metric_code: 'api_calls', display_name: 'API calls', price: { model: 'per_unit', unitPrice: '0.10' }, min_amount: '5.00' },
        {
          metric_code: 'storage_gb',
          display_name: 'Storage',
          price: { model: 'graduated', tiers: [{ upTo: '10', unitPrice: '1', flatFee: '4' }, { upTo: null, unitPrice: '0.5', blockSize: '5' }] },
          first_tier_fee_at_zero_usage: true,
        },
        { metric_code: 'payments', display_name: 'Payments', price: { model: 'percentage', rate: '0.02', fixedFeePerEvent: '0.30', freeEvents: '1' } },
      ],
    }),
  );
  expect(created.status).toBe(201);
  expect(created.json).toMatchObject({
    commitment_includes_fees: true,
    charges: [
      { min_amount: '5.00', max_amount: null, first_tier_fee_at_zero_usage: false },
      { first_tier_fee_at_zero_usage: true, price: { tiers: [{ upTo: '10' }, { blockSize: '5' }] } },
      { price: { freeEvents: '1' } },
    ],
  });

  const customer = await stack.api.call('POST', '/v1/customers', { external_id: 'opt', name: 'Opt', currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const subscription = await stack.api.call('POST', '/v1/subscriptions', { customer_id: customer.json.id, plan_code: 'options', start_at: '2031-03-01T00:00:00Z' });
  const handle = stack.env.client.workflow.getHandle(`subscription:${subscription.json.id}`);

  // Timeline (UTC, 2031):
  //   Mar 1        INV 30.00 flat fee (March, in advance)
  //   Mar 2..5     20 API calls; payments 100.00 (free: first event), 200.00; no storage
  //   Apr 1 01:00  closing INV (canceled at period end):
  //                API calls 20 × 0.10 = 2.00, raised to the charge minimum 5.00
  //                Storage 0 GB: the first tier's flat fee 4.00
  //                Payments: 200.00 × 2 % = 4.00 + 0.30 = 4.30 (100.00 is free)
  //                usage 13.30; commitment 100.00 − usage 13.30 − flat fee 30.00 = true-up 56.70; total 70.00
  await stack.skipTo('2031-03-10T00:00:00Z');
  const calls = Array.from({ length: 20 }, (_, index) => ({ id: `c${index}`, customer: 'opt', type: 'api.call', timestamp: '2031-03-02T00:00:00Z', properties: {} }));
  expect((await stack.api.call('POST', '/v1/events', { events: calls })).json).toMatchObject({ accepted: 20 });
  expect(
    (await stack.api.call('POST', '/v1/events', {
      events: [
        { id: 'p1', customer: 'opt', type: 'payment', timestamp: '2031-03-04T00:00:00Z', properties: { amount: 100 } },
        { id: 'p2', customer: 'opt', type: 'payment', timestamp: '2031-03-05T00:00:00Z', properties: { amount: 200 } },
      ],
    })).json,
  ).toMatchObject({ accepted: 2 });
  const preview = await stack.api.call('GET', `/v1/subscriptions/${subscription.json.id}/usage`);
  expect(preview.json.projected.lines.map((line: { description: string; amount: string }) => [line.description, line.amount])).toEqual([
    ['API calls', '5.00'],
    ['Storage', '4.00'],
    ['Payments', '4.30'],
    ['Minimum commitment true-up', '56.70'],
  ]);

  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'test', requestedBy: 'test' }] });
  await handle.result();

  const invoices = await stack.db<InvoiceRow>('invoices').where({ subscription_id: subscription.json.id }).orderBy(['period_start', 'created_at']);
  expect(invoices.map((invoice) => [invoice.kind, invoice.total])).toEqual([
    ['period', '30.000000000000'],
    ['closing', '70.000000000000'],
  ]);
  const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoices[1].id }).orderBy('position');
  expect(lines.map((line) => [line.description, line.amount])).toEqual([
    ['API calls', '5.000000000000'],
    ['Storage', '4.000000000000'],
    ['Payments', '4.300000000000'],
    ['Minimum commitment true-up', '56.700000000000'],
  ]);
  expect(lines[0].breakdown).toMatchObject({ chargeBounds: { minAmount: '5', ratedAmount: '2', adjustment: '3' } });
  expect(lines[2].breakdown).toMatchObject({ eventsFree: 1, valueFree: '100' });
  expect(lines[3].breakdown).toEqual({ minimumCommitment: '100.00', usageTotal: '13.30', feesCounted: '30.00', shortfall: '56.70' });
});
