/**
 * A grant scoped to one metric, with progressive billing, against Postgres: a threshold invoice charged the calls to
 * the card; the tokens came after it. The period invoice takes the threshold invoice back, and the wallet may pay
 * only usage no threshold invoice billed. Threshold credits covered the usage lines in line order (tokens first), so
 * the calls-only grant paid the calls a second time, in place of the tokens: 30.00 of calls credit spent on tokens
 * (invoice 20.00 where 50.00 was owed), and the available balance showed 30.00 pending where nothing was.
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import { createThresholdActivities } from '../../activities/thresholds';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant, findWallet, pendingUsageCost } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const mar = { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' };
const apr = { start: '2027-04-01T00:00:00.000Z', end: '2027-05-01T00:00:00.000Z' };

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert([
    { code: 'st_tokens', name: 'Tokens', event_type: 'st.tokens', aggregation: 'sum', property: 'n' },
    { code: 'st_calls', name: 'Calls', event_type: 'st.calls', aggregation: 'sum', property: 'n' },
  ]);
});

afterAll(async () => {
  await db?.destroy();
});

const money = (value: unknown) => Number(value).toFixed(2);

test('a calls-only grant pays no calls a threshold invoice billed, and never the tokens', async () => {
  // Tokens and calls at 0.10, threshold 25.00, no fee; a 100.00 grant for calls only.
  //   Mar 1   300 calls = 30.00 -> threshold invoice 30.00 (the calls, in cash)
  //   Mar 4   500 tokens = 50.00 (no grant may pay them)
  //   Apr 1   period invoice: tokens 50.00 + calls 30.00 - 30.00 threshold = 50.00; the grant pays nothing
  const customer = await insertCustomer(db, { external_id: 'scoped-after-threshold' });
  const plan = await insertPlan(db, {
    code: 'st-plan',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [
      { metricCode: 'st_tokens', price: { model: 'per_unit', unitPrice: '0.10' } },
      { metricCode: 'st_calls', price: { model: 'per_unit', unitPrice: '0.10' } },
    ] as never,
    settings: { usageThresholds: { amounts: ['25.00'] } },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:st', start_at: new Date(mar.start), current_period_start: new Date(mar.start), current_period_end: new Date(mar.end) })
    .returning('*');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'calls-only', source: 'promotional', amount: '100.00', effectiveAt: new Date(mar.start), metricCodes: ['st_calls'] });

  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'calls-1', eventType: 'st.calls', occurredAt: new Date('2027-03-01T12:00:00Z'), properties: { n: '300' } }]);
  const threshold = await createThresholdActivities(db).createThresholdInvoice({ subscriptionId: subscription.id, usageStart: mar.start, at: '2027-03-02T00:00:00.000Z', planId: plan.id });
  expect(threshold).toMatchObject({ thresholdIndex: 1, invoice: { total: '30.00' } });

  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'tokens-1', eventType: 'st.tokens', occurredAt: new Date('2027-03-04T12:00:00Z'), properties: { n: '500' } }]);
  // The available balance: nothing of the open usage is the grant's to pay (the calls are paid, the tokens are not its).
  expect(money((await pendingUsageCost(db, customer.id, 'USD')).cost)).toBe('0.00');

  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(mar.start), periodEnd: new Date(mar.end), planId: plan.id, charges: plan.charges as never }),
  );
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: apr, usagePeriod: mar });
  const lines = await db('invoice_lines').where({ invoice_id: summary.invoiceId }).orderBy('position');
  expect(lines.map((line) => [line.kind, line.metric_code, money(line.amount)])).toEqual([
    ['usage', 'st_tokens', '50.00'],
    ['usage', 'st_calls', '30.00'],
    ['threshold_credit', null, '-30.00'],
  ]);
  expect(summary.total).toBe('50.00');
  expect(money((await findWallet(db, customer.id, 'USD'))!.balance)).toBe('100.00');
});
