/**
 * The wallet pays usage, never the flat fee, also on an invoice a retention discount lowers. The discount is taken
 * off every line (fee and usage alike), but the wallet's payable charges took the usage lines at their full amount,
 * capped only by the invoice's total: the wallet paid the discounted usage and part of the discounted fee.
 *
 *   Feb 1 invoice, 50 % retention discount: 20.00 fee + 80.00 January usage - 50.00 discount = 50.00
 *   the usage costs 40.00 after the discount: the wallet pays 40.00, the customer the 10.00 fee
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant, findWallet } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const jan = { start: '2031-01-01T00:00:00.000Z', end: '2031-02-01T00:00:00.000Z' };
const feb = { start: '2031-02-01T00:00:00.000Z', end: '2031-03-01T00:00:00.000Z' };

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'dsc_tokens', name: 'Tokens', event_type: 'dsc.llm', aggregation: 'sum', property: 'tokens' }).onConflict('code').ignore();
});

afterAll(async () => {
  await db?.destroy();
});

async function discountedFebruary(name: string, tokens: string, bucket: string | undefined) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, {
    code: name,
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: [{ metricCode: 'dsc_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never,
    ...(bucket ? { settings: { creditBucket: bucket } } : {}),
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: `${name}-1`, eventType: 'dsc.llm', occurredAt: new Date('2031-01-10T00:00:00Z'), properties: { tokens } }]);
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: `${name}-grant`, source: 'promotional', amount: '100.00', effectiveAt: new Date(jan.start) });
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(jan.start), periodEnd: new Date(jan.end), planId: plan.id, charges: plan.charges as never }),
  );
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: feb, usagePeriod: jan, discountPercentOff: '50' });
  const lines = (await db('invoice_lines').where({ invoice_id: summary.invoiceId }).orderBy('position')).map((line) => [line.kind, Number(line.amount).toFixed(2)]);
  const balance = Number((await findWallet(db, customer.id, 'USD'))!.balance).toFixed(2);
  return { total: summary.total, lines, balance };
}

test('on a discounted invoice the wallet pays the discounted usage, not the fee', async () => {
  expect(await discountedFebruary('dsc-plain', '8000', undefined)).toEqual({
    total: '10.00',
    lines: [
      ['flat_fee', '20.00'],
      ['usage', '80.00'],
      ['discount', '-50.00'],
      ['credit', '-40.00'],
    ],
    balance: '60.00',
  });
});

test('with a credit bucket: the usage after the bucket, discounted, to the cent', async () => {
  // 20.00 fee + 12.35 usage - 5.00 bucket = 27.35; 50 % off: -13.68 (half-up); usage after the bucket 7.35, half 3.675.
  // The wallet pays 3.67 of it (rounded down: never more than the usage's share), the customer 10.00 + 0.01.
  const result = await discountedFebruary('dsc-bucket', '1235', '5.00');
  expect(result.lines).toEqual([
    ['flat_fee', '20.00'],
    ['usage', '12.35'],
    ['credit', '-5.00'],
    ['discount', '-13.68'],
    ['credit', '-3.67'],
  ]);
  expect(result.total).toBe('10.00');
});
