/**
 * The overdraft limit bounds the wallet's debt, however the grants beside it look. The overdraft still open was
 * read from the balance (limit + balance when negative), but the balance also counts grants that cannot pay the
 * usage being drawn (not yet in effect, scoped to another metric, held past expiry): their remaining hid the
 * debt, so the next draw went into the overdraft again and the wallet ended past its limit.
 *
 *   Jan usage 60.00 ──> Feb 1 invoice: the 100.00 grant (effective Feb 15) cannot pay: 25.00 overdraft
 *   Feb usage 200.00 ─> Mar 1 invoice: 100.00 from the grant, and at most 0.00 more overdraft (25.00 already drawn)
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createGrant, findWallet, updateWalletSettings } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const jan = { start: '2031-01-01T00:00:00.000Z', end: '2031-02-01T00:00:00.000Z' };
const feb = { start: '2031-02-01T00:00:00.000Z', end: '2031-03-01T00:00:00.000Z' };
const mar = { start: '2031-03-01T00:00:00.000Z', end: '2031-04-01T00:00:00.000Z' };

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'od_tokens', name: 'Tokens', event_type: 'od.llm', aggregation: 'sum', property: 'tokens' }).onConflict('code').ignore();
});

afterAll(async () => {
  await db?.destroy();
});

async function closeAndInvoice(subscription: { id: string; customer_id: string; plan_id: string }, charges: unknown, usagePeriod: { start: string; end: string }, flatFeePeriod: { start: string; end: string }) {
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: subscription.customer_id, periodStart: new Date(usagePeriod.start), periodEnd: new Date(usagePeriod.end), planId: subscription.plan_id, charges: charges as never }),
  );
  const summary = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod, usagePeriod });
  const lines = await db('invoice_lines').where({ invoice_id: summary.invoiceId }).orderBy('position');
  return { total: summary.total, credits: lines.filter((line) => line.kind === 'credit').map((line) => [line.description, Number(line.amount).toFixed(2)]) };
}

test('a grant not in effect yet does not hide the overdraft already drawn: the wallet never goes past its limit', async () => {
  const customer = await insertCustomer(db, { external_id: 'od-future-grant' });
  const plan = await insertPlan(db, {
    code: 'od-future-grant',
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: [{ metricCode: 'od_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never,
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:od-future-grant', start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  await insertUsageEvents(db, [
    { customerId: customer.id, eventId: 'od-jan', eventType: 'od.llm', occurredAt: new Date('2031-01-10T00:00:00Z'), properties: { tokens: '6000' } },
    { customerId: customer.id, eventId: 'od-feb', eventType: 'od.llm', occurredAt: new Date('2031-02-20T00:00:00Z'), properties: { tokens: '20000' } },
  ]);
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'od-later', source: 'promotional', amount: '100.00', effectiveAt: new Date('2031-02-15T00:00:00Z') });
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  await updateWalletSettings(db, wallet.id, { overdraftLimit: '25.00' });

  const february = await closeAndInvoice(subscription, plan.charges, jan, feb);
  // 60.00 usage: the grant is not in effect in January, so 25.00 overdraft; 20.00 fee + 35.00 usage left to pay.
  expect(february.credits).toEqual([['Credits applied (overdraft)', '-25.00']]);
  expect(february.total).toBe('55.00');

  const march = await closeAndInvoice(subscription, plan.charges, feb, mar);
  // 200.00 usage: 100.00 from the grant; the overdraft is used up, so 20.00 fee + 100.00 usage left to pay.
  expect(march.credits).toEqual([['Credits applied (promotional credit)', '-100.00']]);
  expect(march.total).toBe('120.00');
  const balance = String((await findWallet(db, customer.id, 'USD'))!.balance);
  expect(Number(balance).toFixed(2)).toBe('-25.00'); // never below -overdraft_limit
});
