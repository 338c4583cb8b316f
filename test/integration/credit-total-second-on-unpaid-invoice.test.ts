/**
 * A SECOND credit total of the same time issued while the invoice of that time is still unpaid (in dunning): e.g. an
 * immediate downgrade's proration, then a cancel-now credit for the unused days. The first was taken off what the
 * invoice owes (store/credit-total-refunds.ts applyToUnpaidInvoice); before, the second was not ("one credit total per
 * invoice"): dunning charged the invoice less only the first, the second was refunded once something was paid, and an
 * invoice that ended uncollectible left the customer billed for it while the janitor reported it as owed to them.
 * Now every credit total that fits what the invoice still owes (after its other credits and credit notes) is taken
 * off; the take-off and a refund still never both give the same money back.
 * Real Postgres, the sandbox gateway, activities called directly.
 */
import Decimal from 'decimal.js';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { insertCreditNote, partTakenOff, refundableBalance, type RefundRow } from '../../store/credit-notes';
import { listUnrefundedCreditTotals } from '../../store/credit-total-refunds';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

async function subscriptionWith(code: string, paymentMethod: string) {
  const customer = await insertCustomer(db, { payment_method: paymentMethod });
  const plan = await insertPlan(db, { code: `${code}-${randomUUID().slice(0, 8)}`, name: code, billing_interval: 'P1M', flat_fee: '30.00' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2034-04-01T00:00:00Z'));
  let finalized = Date.now() - 60_000;
  const invoice = async (kind: string, total: string, start: string, end: string): Promise<InvoiceRow> =>
    (
      await db<InvoiceRow>('invoices')
        .insert({
          number: `CS-${randomUUID().slice(0, 8)}`,
          customer_id: customer.id,
          subscription_id: row.id,
          kind,
          status: 'open',
          currency: 'USD',
          period_start: new Date(start),
          period_end: new Date(end),
          total,
          finalized_at: new Date((finalized += 1000)),
        })
        .returning('*')
    )[0];
  const useCard = (card: string) => db('customers').where({ id: customer.id }).update({ payment_method: card });
  return { invoice, useCard };
}

const activities = (gateway = new SandboxGateway(db)) => createActivities({ db, gateway });
const money = (value: string) => new Decimal(value).toFixed(2);
const succeededCharges = async (invoice: InvoiceRow) =>
  (await db('sandbox_gateway_charges').where({ reference: invoice.id, status: 'succeeded' }).select('amount')).map((row: { amount: string }) => money(row.amount));
const refundsOf = async (credit: InvoiceRow) =>
  (await db<RefundRow>('refunds').where({ credit_note_id: credit.id })).map((refund) => [refund.invoice_id, money(refund.amount), refund.status]);
const statusOf = async (id: string) => (await db<InvoiceRow>('invoices').where({ id }).first())!.status;
const reported = async (credit: InvoiceRow) => (await listUnrefundedCreditTotals(db, new Date(Date.now() + 60_000), 1000)).some((row) => row.id === credit.id);

// April 2034 (30 days): Apr 1 period invoice 30.00, declined (dunning); Apr 11 immediate downgrade: -5.00 proration;
// Apr 21 cancel now: 10 days unused, closing -10.00. Both credits are issued while April is unpaid.
async function twoCreditsWhileInDunning(code: string) {
  const { invoice, useCard } = await subscriptionWith(code, 'pm_sandbox_declined');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const downgrade = await invoice('proration', '-5.00', '2034-04-11T00:00:00Z', '2034-05-01T00:00:00Z');
  await activities().refundCreditTotal({ invoiceId: downgrade.id });
  const closing = await invoice('closing', '-10.00', '2034-04-21T00:00:00Z', '2034-05-01T00:00:00Z');
  // The workflow pays each credit back as soon as it is issued: nothing of April is paid, so no refund.
  await activities().refundCreditTotal({ invoiceId: closing.id });
  expect([await refundsOf(downgrade), await refundsOf(closing)]).toEqual([[], []]);
  return { period, downgrade, closing, useCard };
}

test('the dunning retry after two credits charges what the period invoice still owes after both; neither is refunded', async () => {
  const { period, downgrade, closing, useCard } = await twoCreditsWhileInDunning('two-credits-in-dunning');
  await useCard('pm_sandbox_ok');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid' });
  // Before: charged 25.00 (only the first credit taken off), and the second refunded 10.00 from it afterwards.
  expect(await succeededCharges(period)).toEqual(['15.00']);
  // The workflow's retries and the janitor after them: nothing to refund, nothing reported.
  for (const credit of [downgrade, closing]) await activities().refundCreditTotal({ invoiceId: credit.id });
  expect([await refundsOf(downgrade), await refundsOf(closing)]).toEqual([[], []]);
  expect([await statusOf(downgrade.id), await statusOf(closing.id)]).toEqual(['paid', 'paid']);
  expect([await reported(downgrade), await reported(closing)]).toEqual([false, false]);
  expect((await refundableBalance(db, period.id)).remaining.toFixed(2)).toBe('15.00');
});

test('a period invoice that ends uncollectible after two credits owes only the rest; neither credit is owed on top', async () => {
  const { period, downgrade, closing } = await twoCreditsWhileInDunning('two-credits-uncollectible');
  await activities().markInvoiceUncollectible({ invoiceId: period.id, reason: 'dunning exhausted' });
  // Before: the janitor reported the second credit (10.00) as owed to the customer, billed 25.00 of 30.00.
  expect([await reported(downgrade), await reported(closing)]).toEqual([false, false]);
  await db('customers').where({ id: period.customer_id }).update({ payment_method: 'pm_sandbox_ok' });
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded' });
  expect(await succeededCharges(period)).toEqual(['15.00']);
  expect([await refundsOf(downgrade), await refundsOf(closing)]).toEqual([[], []]);
  expect([await statusOf(downgrade.id), await statusOf(closing.id)]).toEqual(['paid', 'paid']);
});

test('credits that together owe more than the invoice: the second takes what the first left, only its rest is owed back', async () => {
  const { invoice, useCard } = await subscriptionWith('two-credits-too-many', 'pm_sandbox_declined');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const first = await invoice('proration', '-20.00', '2034-04-11T00:00:00Z', '2034-05-01T00:00:00Z');
  await activities().refundCreditTotal({ invoiceId: first.id });
  const second = await invoice('closing', '-12.00', '2034-04-21T00:00:00Z', '2034-05-01T00:00:00Z');
  // 30.00 - 20.00 = 10.00 still owed: the second takes those 10.00; its other 2.00 has no paid invoice of April to
  // come back from, so it is owed to the customer (30.00 billed, 32.00 credited).
  expect(await activities().refundCreditTotal({ invoiceId: second.id })).toMatchObject({ status: 'not_refundable', detail: expect.stringContaining('2.00 USD') });
  await useCard('pm_sandbox_ok');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  // Before: dunning charged 10.00, and the second credit refunded those 10.00 back.
  expect(await succeededCharges(period)).toEqual([]);
  await activities().refundCreditTotal({ invoiceId: second.id });
  expect(await refundsOf(second)).toEqual([]);
  expect([await statusOf(first.id), await statusOf(second.id)]).toEqual(['paid', 'open']);
  expect([await reported(first), await reported(second)]).toEqual([false, true]);
});

test('a second credit issued while the charge is at the gateway is refunded from it once, never also taken off', async () => {
  const { invoice, useCard } = await subscriptionWith('two-credits-race', 'pm_sandbox_declined');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const downgrade = await invoice('proration', '-10.00', '2034-04-11T00:00:00Z', '2034-05-01T00:00:00Z');
  await activities().refundCreditTotal({ invoiceId: downgrade.id });
  await useCard('pm_sandbox_ok');
  let closing: InvoiceRow | undefined;
  const gateway = new SandboxGateway(db);
  const charge = gateway.charge.bind(gateway);
  gateway.charge = async (request) => {
    // The pending payment of 20.00 (30.00 less the downgrade) is written; the second credit comes before the answer.
    closing = await invoice('closing', '-5.00', '2034-04-21T00:00:00Z', '2034-05-01T00:00:00Z');
    await activities().refundCreditTotal({ invoiceId: closing.id });
    return charge(request);
  };
  expect(await activities(gateway).chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded' });
  expect(await succeededCharges(period)).toEqual(['20.00']);
  await activities().refundCreditTotal({ invoiceId: closing!.id });
  await activities().refundCreditTotal({ invoiceId: closing!.id });
  expect(await refundsOf(downgrade)).toEqual([]);
  expect(await refundsOf(closing!)).toEqual([[period.id, '5.00', 'succeeded']]);
  expect([await statusOf(downgrade.id), await statusOf(closing!.id)]).toEqual(['paid', 'paid']);
  expect((await refundableBalance(db, period.id)).remaining.toFixed(2)).toBe('15.00');
  expect([await reported(downgrade), await reported(closing!)]).toEqual([false, false]);
});

test('a second credit the payment cannot refund in full stays reported for the rest (its share of the take-off is counted once)', async () => {
  const { invoice, useCard } = await subscriptionWith('two-credits-short', 'pm_sandbox_declined');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const downgrade = await invoice('proration', '-10.00', '2034-04-11T00:00:00Z', '2034-05-01T00:00:00Z');
  await activities().refundCreditTotal({ invoiceId: downgrade.id });
  await useCard('pm_sandbox_ok');
  let closing: InvoiceRow | undefined;
  const gateway = new SandboxGateway(db);
  const charge = gateway.charge.bind(gateway);
  gateway.charge = async (request) => {
    // While the 20.00 charge is at the gateway: the closing credit (-5.00), and reversed outcomes credited 18.00.
    closing = await invoice('closing', '-5.00', '2034-04-21T00:00:00Z', '2034-05-01T00:00:00Z');
    await activities().refundCreditTotal({ invoiceId: closing.id });
    await db.transaction(async (trx) => {
      const locked = (await trx<InvoiceRow>('invoices').where({ id: period.id }).forUpdate().first())!;
      await insertCreditNote(trx, locked, { total: '18.00', idempotencyKey: `reversal:${randomUUID()}`, reason: 'outcomes reversed' });
    });
    return charge(request);
  };
  expect(await activities(gateway).chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded' });
  expect(await succeededCharges(period)).toEqual(['20.00']);
  // The charge took the downgrade off (30.00 - 20.00); the closing credit took nothing off and the payment had 2.00
  // left for it once the reversal note took its 18.00: 3.00 is still owed to the customer.
  expect(await refundsOf(closing!)).toEqual([[period.id, '2.00', 'succeeded']]);
  // Before: counted as if the 10.00 the charge left uncollected were its own too, so it was never reported.
  expect(await reported(closing!)).toBe(true);
  expect(await reported(downgrade)).toBe(false);
  // The janitor's pass: nothing else of April is paid, so the 3.00 stays owed and said so.
  expect(await activities().refundCreditTotal({ invoiceId: closing!.id })).toMatchObject({ status: 'not_refundable', detail: expect.stringContaining('3.00 USD') });
  expect(await refundsOf(closing!)).toEqual([[period.id, '2.00', 'succeeded']]);
});

test('two credits applied at once never take off together more than the invoice owes (its row lock serializes them)', async () => {
  const { invoice, useCard } = await subscriptionWith('two-credits-at-once', 'pm_sandbox_declined');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const first = await invoice('proration', '-20.00', '2034-04-11T00:00:00Z', '2034-05-01T00:00:00Z');
  const second = await invoice('closing', '-15.00', '2034-04-21T00:00:00Z', '2034-05-01T00:00:00Z');
  // Both requests start while a payment of April holds its row lock, so they run side by side: only April's row lock
  // (taken before reading what it owes) makes the second read 10.00 owed after the first, not 30.00. Without it, both
  // were taken off (35.00 off a 30.00 invoice).
  const blocker = await db.transaction();
  await blocker('invoices').where({ id: period.id }).forUpdate().first();
  const both = Promise.all([activities().refundCreditTotal({ invoiceId: first.id }), activities().refundCreditTotal({ invoiceId: second.id })]);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await blocker.commit();
  await both;
  // Whichever came first took all of it, the other what was left (30.00 in all, never 35.00).
  const linked = await db<InvoiceRow & { credited_invoice_id: string | null }>('invoices').whereIn('id', [first.id, second.id]).where({ credited_invoice_id: period.id });
  expect(linked).toHaveLength(2);
  expect(linked.reduce((sum, credit) => sum.plus(partTakenOff(credit)), new Decimal(0)).toFixed(2)).toBe('30.00');
  await useCard('pm_sandbox_ok');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  expect(await succeededCharges(period)).toEqual([]);
});
