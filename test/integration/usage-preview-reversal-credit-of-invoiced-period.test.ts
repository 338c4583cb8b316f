/**
 * The usage preview (GET /v1/subscriptions/:id/usage, the usage page's "projected usage charges") and the wallet's
 * pending usage when an outcome of an invoiced period was reversed: the next invoice that bills usage carries a
 * `(reversed outcomes)` credit line, and a line for what of it goes back to the wallet draw that paid the period
 * (docs/pricing.md). Without them the preview said 1.10 where the invoice billed 1.10 - 5.30 of usage, and the wallet
 * showed 1.10 pending where the invoice drew 0.80. API, workflow, time-skipping server and a real Postgres.
 */
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { useApiStack } from '../support/api-stack';
import { eventually } from '../support/eventually';

const stack = useApiStack();

const deal = (id: string, customer: string, timestamp: string, value: string) => ({ id, customer, type: 'deal.closed', timestamp, properties: { value } });
const reversal = (id: string, customer: string, timestamp: string, reverses: string) => ({ id, customer, type: 'deal.closed', timestamp, reverses, properties: {} });
const WALLET_DRAW = 'Credits applied';

test('an outcome of an invoiced period reversed: the preview and the wallet project its credit as the next invoice carries it', async () => {
  expect((await stack.api.call('POST', '/v1/metrics', { code: 'deals', name: 'Deals', event_type: 'deal.closed', aggregation: 'count', property: 'value' })).status).toBe(201);
  const plan = await stack.api.call('POST', '/v1/plans', {
    code: 'outcome-preview', name: 'Outcomes', currency: 'USD', billing_interval: 'P1M', flat_fee: '5.00', usage_grace_period: 'PT1H', dispute_window: 'P14D',
    features: [{ code: 'credits', kind: 'wallet' }],
    charges: [{ metric_code: 'deals', display_name: 'Deals (2 % + 0.30)', price: { model: 'percentage', rate: '0.02', fixedFeePerEvent: '0.30' } }],
  });
  expect(plan.status).toBe(201);
  const customers: Record<string, string> = {};
  const subscriptions: Record<string, string> = {};
  for (const name of ['globex', 'hooli']) {
    customers[name] = (await stack.api.call('POST', '/v1/customers', { external_id: name, name, currency: 'USD', payment_method: 'pm_sandbox_ok' })).json.id;
    subscriptions[name] = (await stack.api.call('POST', '/v1/subscriptions', { customer_id: customers[name], plan_code: 'outcome-preview', start_at: '2032-03-01T00:00:00Z' })).json.id;
  }

  // Timeline (UTC, 2032), 2 % of each deal + 0.30, disputes for 14 days; prepaid credit 20.00 for globex from Apr 1
  // (its March usage is paid by card), for hooli from Mar 2 (its March usage is paid from the wallet):
  //   Mar 26  deal 250.00 each (5.30)          Apr 1  INV: fee 5.00 + March usage 5.30
  //   Apr 2   that deal reversed (in its window), a deal of 40.00 each (1.10)
  //   May 1   INV: fee 5.00 + 1.10 - 5.30 for the reversed deal
  //           globex: 0.80, all drawn from the wallet (never more than the invoice's total)
  //           hooli: + 5.30 given back to the wallet that paid it; 1.10 drawn, 5.00 by card
  await stack.skipTo('2032-03-02T00:00:00Z');
  const grant = (customer: string, effectiveAt?: string) =>
    stack.api.call('POST', `/v1/customers/${customers[customer]}/wallet/grants`, { amount: '20.00', source: 'purchased', ...(effectiveAt ? { effective_at: effectiveAt } : {}) });
  expect((await grant('globex', '2032-04-01T00:00:00Z')).status).toBe(201);
  expect((await grant('hooli')).status).toBe(201);
  await stack.skipTo('2032-03-27T00:00:00Z');
  expect((await stack.api.call('POST', '/v1/events', { events: [deal('g1', 'globex', '2032-03-26T00:00:00Z', '250.00'), deal('h1', 'hooli', '2032-03-26T00:00:00Z', '250.00')] })).json).toMatchObject({ accepted: 2 });
  await stack.skipTo('2032-04-03T00:00:00Z');
  const april = await stack.api.call('POST', '/v1/events', {
    events: [reversal('g1r', 'globex', '2032-04-02T00:00:00Z', 'g1'), deal('g2', 'globex', '2032-04-02T00:00:00Z', '40.00'), reversal('h1r', 'hooli', '2032-04-02T00:00:00Z', 'h1'), deal('h2', 'hooli', '2032-04-02T00:00:00Z', '40.00')],
  });
  expect(april.json).toMatchObject({ accepted: 4, rejected: 0 });

  await stack.skipTo('2032-04-30T22:00:00Z');
  const projected: Record<string, { lines: string[][]; usage_total: string; subtotal: string; pending: string }> = {};
  for (const name of ['globex', 'hooli']) {
    const preview = (await stack.api.call('GET', `/v1/subscriptions/${subscriptions[name]}/usage`)).json.projected;
    const wallet = (await stack.api.call('GET', `/v1/customers/${customers[name]}/wallet`)).json;
    projected[name] = { lines: preview.lines.map((line: { description: string; amount: string }) => [line.description, line.amount]), usage_total: preview.usage_total, subtotal: preview.subtotal, pending: wallet.pending_usage };
  }

  await stack.skipTo('2032-05-01T02:00:00Z');
  const billed: Record<string, { lines: string[][]; drawn: string }> = {};
  for (const name of ['globex', 'hooli']) {
    const may = await eventually(
      async () => stack.db<InvoiceRow>('invoices').where({ subscription_id: subscriptions[name], kind: 'period' }).andWhere('period_start', '2032-05-01T00:00:00Z').whereNotNull('number').first(),
      `${name}'s May invoice`,
    );
    const lines = await stack.db<InvoiceLineRow>('invoice_lines').where({ invoice_id: may.id }).whereNot({ kind: 'flat_fee' }).orderBy('position');
    // Test-side display only: the amounts as the API writes them.
    const shown = lines.map((line) => [line.description, Number(line.amount).toFixed(2)]);
    billed[name] = {
      lines: shown.filter(([description]) => !description.startsWith(WALLET_DRAW)),
      drawn: (-shown.filter(([description]) => description.startsWith(WALLET_DRAW)).reduce((sum, [, amount]) => sum + Number(amount), 0)).toFixed(2),
    };
  }
  expect(billed).toEqual({
    globex: { lines: [['Deals (2 % + 0.30)', '1.10'], ['Deals (2 % + 0.30) (reversed outcomes)', '-5.30']], drawn: '0.80' },
    hooli: { lines: [['Deals (2 % + 0.30)', '1.10'], ['Deals (2 % + 0.30) (reversed outcomes)', '-5.30'], ['Reversed usage credit returned to your prepaid credits', '5.30']], drawn: '1.10' },
  });
  // The preview listed the lines the invoice then billed before the wallet's draw, and the wallet what it drew.
  expect(projected).toEqual({
    globex: { lines: billed.globex.lines, usage_total: '1.10', subtotal: '-4.20', pending: '0.80' },
    hooli: { lines: billed.hooli.lines, usage_total: '1.10', subtotal: '1.10', pending: '1.10' },
  });
});
