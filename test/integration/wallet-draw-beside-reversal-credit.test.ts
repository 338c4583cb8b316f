/**
 * The wallet's draw on an invoice that also carries a reversed outcome's credit (docs/wallets.md "Reversed
 * outcomes"): the invoice holds the period's own usage and credit bucket, and, for an earlier period, negative
 * usage, the bucket's correction (+) and a "returned to your prepaid credits" line (+) offsetting what went back to
 * the wallet. Only the period's own bucket covers its usage before the wallet pays; the earlier period's lines took
 * it for the bucket too, so the wallet paid the usage as if there were no bucket: part of the flat fee, the
 * returned credit paid straight out as a cash discount. Every amount by hand, to the minor unit.
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { insertReversalEvents } from '../../store/reversals';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant, findWallet } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'rv_tokens', name: 'Tokens', event_type: 'rv.llm', aggregation: 'sum', property: 'tokens' });
});

afterAll(async () => {
  await db?.destroy();
});

const month = (year: number, index: number) => ({
  start: new Date(Date.UTC(year, index, 1)).toISOString(),
  end: new Date(Date.UTC(year, index + 1, 1)).toISOString(),
});

test('an invoice crediting a reversed outcome: the wallet pays the period’s usage after its own bucket, never the flat fee', async () => {
  // A plan of 20.00 a month + 0.01 a token with a 5.00 credit bucket; a 4.00 promo (first) and 100.00 bought.
  const customer = await insertCustomer(db, { external_id: 'rv-acme' });
  const plan = await insertPlan(db, { code: 'rv-pro', billing_interval: 'P1M', flat_fee: '20.00', charges: [{ metricCode: 'rv_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never, settings: { creditBucket: '5.00' } });
  const [january, february, march] = [0, 1, 2].map((index) => month(2029, index));
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:rv-acme', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'promo', source: 'promotional', amount: '4.00', priority: 0, effectiveAt: new Date(january.start), expiresAt: new Date('2029-12-01T00:00:00Z') });
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'bought', source: 'purchased', amount: '100.00', priority: 1, effectiveAt: new Date(january.start) });
  const close = (period: { start: string; end: string }) =>
    db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(period.start), periodEnd: new Date(period.end), planId: plan.id, charges: plan.charges as never }));
  const invoice = (flatFeePeriod: { start: string; end: string }, usagePeriod: { start: string; end: string }) =>
    createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod, usagePeriod });

  // January: 1240 tokens = 12.40 − 5.00 bucket = 7.40, all paid by the wallet (promo 4.00, bought 3.40).
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'rv-jan', eventType: 'rv.llm', occurredAt: new Date('2029-01-02T00:00:00Z'), properties: { tokens: '1240' } }]);
  await close(january);
  expect((await invoice(february, january)).total).toBe('20.00');

  // February: January's event is reversed (7.40 goes back to the wallet), and 1000 tokens of February = 10.00.
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'rv-feb', eventType: 'rv.llm', occurredAt: new Date('2029-02-02T00:00:00Z'), properties: { tokens: '1000' } }]);
  await insertReversalEvents(db, [{ customerId: customer.id, eventId: 'rv-jan-r', eventType: 'rv.llm', occurredAt: new Date('2029-02-03T00:00:00Z'), properties: {}, reversesEventId: 'rv-jan' }]);
  await close(february);
  const marchInvoice = await invoice(march, february);
  const lines = await db('invoice_lines').where({ invoice_id: marchInvoice.invoiceId }).orderBy('position');
  // 20.00 fee + 10.00 February − 5.00 its bucket; January: −12.40 + 5.00 bucket correction, 7.40 of which went back
  // to the wallet (+7.40); the wallet pays February's 10.00 − 5.00 = 5.00. Cash: 20.00, the fee.
  expect(lines.map((line) => [line.kind, Number(line.amount).toFixed(2)])).toEqual([
    ['flat_fee', '20.00'],
    ['usage', '10.00'],
    ['credit', '-5.00'],
    ['usage', '-12.40'],
    ['credit', '5.00'],
    ['credit', '7.40'],
    ['credit', '-4.00'],
    ['credit', '-1.00'],
  ]);
  expect(marchInvoice.total).toBe('20.00');
  // 104.00 − 7.40 (January) + 7.40 (given back) − 5.00 (February) = 99.00
  expect(Number((await findWallet(db, customer.id, 'USD'))!.balance).toFixed(2)).toBe('99.00');
});
