/**
 * The available balance (ledger balance minus the usage the next invoices will draw) must not jump up between the
 * usage close and the invoice that draws for it. The close claims the period's events (they are no longer open
 * usage) in one transaction, the invoice draws in another; in between, the closed usage counted nowhere, so the
 * available balance showed the whole ledger balance. A balance watch in that gap re-armed auto-recharge and the
 * invoice's draw then crossed the threshold again: a second recharge for the one crossing (and a second
 * low-balance webhook), even after a declined recharge, which must wait for a real lift of the balance.
 *
 *   Jan: 100.00 grant, 60.00 usage ── available 40.00 < 50.00 threshold: recharge #1 (pending)
 *   Feb 1: usage closed ── watch ── invoice draws 60.00 ── watch: still the one crossing, one recharge
 */
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { observeWalletBalance } from '../../store/wallet-topups';
import { availableBalance, createGrant, findWallet, updateWalletSettings } from '../../store/wallets';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;
const jan = { start: '2031-01-01T00:00:00.000Z', end: '2031-02-01T00:00:00.000Z' };
const feb = { start: '2031-02-01T00:00:00.000Z', end: '2031-03-01T00:00:00.000Z' };

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'gap_tokens', name: 'Tokens', event_type: 'gap.llm', aggregation: 'sum', property: 'tokens' }).onConflict('code').ignore();
});

afterAll(async () => {
  await db?.destroy();
});

test('the closed usage stays pending until its invoice draws: the available balance does not jump, auto-recharge fires once', async () => {
  const customer = await insertCustomer(db, { external_id: 'gap-close-invoice' });
  const plan = await insertPlan(db, {
    code: 'gap-close-invoice',
    billing_interval: 'P1M',
    flat_fee: '20.00',
    charges: [{ metricCode: 'gap_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never,
    settings: { creditBucket: '5.00' },
  });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:gap-close-invoice', start_at: new Date(jan.start), current_period_start: new Date(jan.start), current_period_end: new Date(jan.end) })
    .returning('*');
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'gap-grant', source: 'purchased', amount: '100.00', effectiveAt: new Date(jan.start) });
  const wallet = (await findWallet(db, customer.id, 'USD'))!;
  await updateWalletSettings(db, wallet.id, { rechargeThreshold: '50.00', rechargeAmount: '10.00' });
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'gap-1', eventType: 'gap.llm', occurredAt: new Date('2031-01-10T00:00:00Z'), properties: { tokens: '6500' } }]);

  // 65.00 usage - 5.00 bucket = 60.00 pending: 40.00 available, below the 50.00 threshold: recharge #1.
  expect(await availableBalance(db, customer.id, 'USD')).toBe('40.00');
  expect((await observeWalletBalance(db, wallet, new Date('2031-01-20T00:00:00Z'))).rechargeTopUpId).not.toBeNull();

  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(jan.start), periodEnd: new Date(jan.end), planId: plan.id, charges: plan.charges as never }),
  );
  const afterClose = await availableBalance(db, customer.id, 'USD');
  await observeWalletBalance(db, wallet, new Date('2031-02-01T00:00:01Z'));

  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: feb, usagePeriod: jan });
  expect(invoice.total).toBe('20.00'); // the wallet paid the 60.00 of usage
  const afterInvoice = await availableBalance(db, customer.id, 'USD');
  await observeWalletBalance(db, wallet, new Date('2031-02-01T00:00:02Z'));

  const [{ count }] = await db('wallet_top_ups').where({ wallet_id: wallet.id, kind: 'recharge' }).count<{ count: string }[]>('* as count');
  expect({ afterClose, afterInvoice, recharges: Number(count) }).toEqual({ afterClose: '40.00', afterInvoice: '40.00', recharges: 1 });
});
