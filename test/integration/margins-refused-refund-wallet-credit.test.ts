/**
 * A refund the gateway refuses is credited to the customer's wallet instead (store/credit-notes.ts settleRefund):
 * the credit note stays issued (paid) and still subtracts from revenue (docs/margins.md). When that wallet credit
 * later pays an invoice, the invoice carries a "credits applied" line for it: the same credit must not come off the
 * margins report a second time. Real Postgres; the credit note, its refused refund and the grant go through the
 * real store code; the later invoice's wallet line is built by the real domain function.
 */
import { Dec } from '../../domain/money';
import { creditsAppliedLines } from '../../domain/wallet-invoice';
import type { Database } from '../../store/database';
import { issueCreditNote, settleRefund } from '../../store/credit-notes';
import type { InvoiceRow } from '../../store/invoices';
import { marginReport } from '../../store/margins';
import { refundCreditTotal } from '../../store/credit-total-refunds';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

const MONTH = (month: number) => new Date(Date.UTC(2034, month - 1, 1));

async function paidInvoice(subscription: { id: string; customer_id: string }, name: string, month: number, lines: { kind: string; description: string; amount: string; breakdown?: object }[], total: string, kind = 'period'): Promise<InvoiceRow> {
  const [row] = await db<InvoiceRow>('invoices')
    .insert({ number: name, customer_id: subscription.customer_id, subscription_id: subscription.id, kind, status: new Dec(total).gt(0) ? 'paid' : 'open', currency: 'USD', period_start: MONTH(month), period_end: MONTH(month + 1), total, finalized_at: MONTH(month) })
    .returning('*');
  await db('invoice_lines').insert(
    lines.map((line, position) => ({ invoice_id: row.id, position, quantity: '1', period_start: MONTH(month), period_end: MONTH(month + 1), ...line, breakdown: JSON.stringify(line.breakdown ?? {}) })),
  );
  if (new Dec(total).gt(0)) {
    await db('payments').insert({ invoice_id: row.id, attempt: 1, status: 'succeeded', amount: total, currency: 'USD', idempotency_key: `payment:${row.id}:1`, gateway_charge_id: `ch_${name}` });
  }
  return row;
}

async function subscriptionOf(name: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: name, billing_interval: 'P1M', flat_fee: '49.00' });
  const { row } = await insertSubscription(db, customer, plan, MONTH(3));
  return { id: row.id, customer_id: customer.id };
}

async function revenueOf(subscriptionId: string, from: number, to: number): Promise<string | undefined> {
  const report = await marginReport(db, { from: MONTH(from), to: MONTH(to), subscriptionIds: [subscriptionId] });
  return report.subscriptions[0]?.revenue;
}

test('a refused refund credited to the wallet comes off revenue once, not again when the wallet credit pays an invoice', async () => {
  // Timeline (2034): March invoice 49.00 paid; finance refunds 4.90 of it; the gateway refuses, so the 4.90 becomes
  // wallet credit (grant credit_note:<note>). The April invoice bills 49.00 and the wallet pays 4.90 of it.
  //   revenue Mar-Apr = 49.00 - 4.90 (the credit note) + 49.00 = 93.10; the April wallet line is the same 4.90.
  const subscription = await subscriptionOf('refused-refund-margin');
  const march = await paidInvoice(subscription, 'RR-03', 3, [{ kind: 'flat_fee', description: 'Fee', amount: '49.00' }], '49.00');
  const { refund } = await issueCreditNote(db, { invoiceId: march.id, amount: new Dec('4.90'), reason: 'goodwill', idempotencyKey: 'rr-1', actor: 'finance' });
  await settleRefund(db, refund.id, { status: 'failed', gatewayRefundId: null, failureCode: 'card_closed' });
  const grant = await db('wallet_grants').where({ grant_key: `credit_note:${refund.credit_note_id}` }).first();
  expect(grant).toMatchObject({ source: 'goodwill' });

  const walletLine = creditsAppliedLines([{ grantId: grant.id, source: 'goodwill', amount: '4.90', expiresAt: null }], 'USD', { start: MONTH(4).toISOString(), end: MONTH(5).toISOString() })[0];
  await paidInvoice(subscription, 'RR-04', 4, [{ kind: 'flat_fee', description: 'Fee', amount: '49.00' }, { kind: 'credit', description: walletLine.description, amount: walletLine.amount, breakdown: walletLine.breakdown }], '44.10');

  expect(await revenueOf(subscription.id, 3, 4)).toBe('44.10');
  expect(await revenueOf(subscription.id, 4, 5)).toBe('49.00');
  expect(await revenueOf(subscription.id, 3, 5)).toBe('93.10');
});

test('a credit total whose refund is refused counts once: the negative invoice, not also the wallet credit it became', async () => {
  // March 49.00 paid; an immediate downgrade's proration invoice totals -10.00 (its refund row names it as the
  // credit document); the gateway refuses, so 10.00 goes to the wallet and pays 10.00 of April's 49.00.
  //   revenue Mar-Apr = 49.00 - 10.00 + 49.00 = 88.00.
  const subscription = await subscriptionOf('refused-credit-total-margin');
  await paidInvoice(subscription, 'RC-03', 3, [{ kind: 'flat_fee', description: 'Fee', amount: '49.00' }], '49.00');
  const proration = await paidInvoice(subscription, 'RC-03P', 3, [{ kind: 'proration', description: 'Unused time', amount: '-10.00' }], '-10.00', 'proration');
  const result = await refundCreditTotal(db, proration.id);
  expect(result.refund).not.toBeNull();
  await settleRefund(db, result.refund!.id, { status: 'failed', gatewayRefundId: null, failureCode: 'card_closed' });
  const grant = await db('wallet_grants').where({ grant_key: `credit_note:${proration.id}` }).first();
  expect(grant).toBeDefined();

  const walletLine = creditsAppliedLines([{ grantId: grant.id, source: 'goodwill', amount: '10.00', expiresAt: null }], 'USD', { start: MONTH(4).toISOString(), end: MONTH(5).toISOString() })[0];
  await paidInvoice(subscription, 'RC-04', 4, [{ kind: 'flat_fee', description: 'Fee', amount: '49.00' }, { kind: 'credit', description: walletLine.description, amount: walletLine.amount, breakdown: walletLine.breakdown }], '39.00');

  expect(await revenueOf(subscription.id, 3, 5)).toBe('88.00');
});

test('usage paid with purchased credit is revenue; promotional credit is a price cut', async () => {
  // April 2034: 60.00 of usage; the wallet pays 40.00 of it from purchased credit and 20.00 from promotional credit.
  //   revenue = 60.00 - 20.00 = 40.00 (before: 0.00, the prepaid customer shown as loss-making).
  const subscription = await subscriptionOf('purchased-credit-margin');
  const [wallet] = await db('wallets').insert({ customer_id: subscription.customer_id, currency: 'USD' }).returning('*');
  const grant = async (source: string) =>
    (await db('wallet_grants').insert({ wallet_id: wallet.id, grant_key: `${source}-1`, source, amount: '100.00', remaining: '100.00', effective_at: MONTH(3) }).returning('*'))[0];
  const purchased = await grant('purchased');
  const promotional = await grant('promotional');
  const lines = creditsAppliedLines(
    [
      { grantId: purchased.id, source: 'purchased', amount: '40.00', expiresAt: null },
      { grantId: promotional.id, source: 'promotional', amount: '20.00', expiresAt: null },
    ],
    'USD',
    { start: MONTH(4).toISOString(), end: MONTH(5).toISOString() },
  );
  await paidInvoice(
    subscription,
    'PC-04',
    4,
    [{ kind: 'usage', description: 'Calls', amount: '60.00' }, ...lines.map((line) => ({ kind: 'credit', description: line.description, amount: line.amount, breakdown: line.breakdown }))],
    '0.00',
  );
  expect(await revenueOf(subscription.id, 4, 5)).toBe('40.00');
});
