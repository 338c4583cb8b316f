/**
 * A credit total (a cancel-now credit for unused time, an immediate downgrade's proration) issued while the invoice
 * of the time it credits is still unpaid (in dunning). Before, dunning went on charging the FULL period invoice and the
 * credit was refunded only after it was paid; ended `uncollectible`, the customer was billed the whole invoice and
 * owed the credit, and nothing netted the two. Now the credit is taken off what that invoice still owes (as a credit
 * note issued while unpaid is), settled without a refund when the charge collects the rest, and refunded from the
 * payment only when the charge was already at the gateway for the whole total. Never both.
 * Real Postgres, the sandbox gateway, activities called directly.
 */
import Decimal from 'decimal.js';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { amountOwedAfterCreditNotes, insertCreditNote, refundableBalance, refundCreditNotesOfPaidInvoice, type RefundRow } from '../../store/credit-notes';
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
          number: `CU-${randomUUID().slice(0, 8)}`,
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
  (await db<RefundRow>('refunds').where({ credit_note_id: credit.id }).orderBy([{ column: 'created_at' }, { column: 'id' }])).map((refund) => [refund.invoice_id, money(refund.amount), refund.status]);
const gatewayRefunded = async (credit: InvoiceRow) => {
  const keys = (await db<RefundRow>('refunds').where({ credit_note_id: credit.id }).select('idempotency_key')).map((row) => row.idempotency_key);
  const [{ total }] = await db('sandbox_gateway_refunds').whereIn('idempotency_key', keys).sum('amount as total');
  return money(total ?? '0');
};
const statusOf = async (id: string) => (await db<InvoiceRow>('invoices').where({ id }).first())!.status;
const reported = async (credit: InvoiceRow) => (await listUnrefundedCreditTotals(db, new Date(Date.now() + 60_000), 1000)).some((row) => row.id === credit.id);

// April 2034 (30 days): Apr 1 period invoice 30.00, declined (dunning); Apr 21 cancel now: 10 days unused, closing -10.00.
async function creditedWhileInDunning(code: string) {
  const { invoice, useCard } = await subscriptionWith(code, 'pm_sandbox_declined');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const credit = await invoice('closing', '-10.00', '2034-04-21T00:00:00Z', '2034-05-01T00:00:00Z');
  // The workflow pays the credit back as soon as it is issued: nothing of April is paid, so no refund.
  await activities().refundCreditTotal({ invoiceId: credit.id });
  expect(await refundsOf(credit)).toEqual([]);
  return { period, credit, useCard };
}

test('the dunning retry after a cancel-now credit charges what the period invoice still owes, and the credit is settled without a refund', async () => {
  const { period, credit, useCard } = await creditedWhileInDunning('credit-in-dunning');
  await useCard('pm_sandbox_ok');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid' });
  // Before: charged 30.00 (then 10.00 refunded by a later janitor run).
  expect(await succeededCharges(period)).toEqual(['20.00']);
  expect(await statusOf(credit.id)).toBe('paid');
  // Neither the workflow's retry nor the janitor refunds it again: nothing was taken that was not owed.
  await activities().refundCreditTotal({ invoiceId: credit.id });
  expect(await refundsOf(credit)).toEqual([]);
  expect(await reported(credit)).toBe(false);
  // What is left to refund of April is what was paid: 20.00.
  expect((await refundableBalance(db, period.id)).remaining.toFixed(2)).toBe('20.00');
});

test('a period invoice that ends uncollectible after a cancel-now credit owes only the rest; the credit is not owed on top', async () => {
  const { period, credit } = await creditedWhileInDunning('credit-uncollectible');
  await activities().markInvoiceUncollectible({ invoiceId: period.id, reason: 'dunning exhausted' });
  // Before: the janitor reported the 10.00 as owed to the customer, who was billed the whole 30.00.
  expect(await reported(credit)).toBe(false);
  // Money that arrives later pays what is still owed: 20.00.
  await db('customers').where({ id: period.customer_id }).update({ payment_method: 'pm_sandbox_ok' });
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded' });
  expect(await succeededCharges(period)).toEqual(['20.00']);
  expect(await refundsOf(credit)).toEqual([]);
  expect(await statusOf(credit.id)).toBe('paid');
});

test('a credit issued while the charge is at the gateway for the whole invoice is refunded from it once, never also taken off', async () => {
  const { invoice } = await subscriptionWith('credit-race', 'pm_sandbox_ok');
  const period = await invoice('period', '30.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  let credit: InvoiceRow | undefined;
  const gateway = new SandboxGateway(db);
  const charge = gateway.charge.bind(gateway);
  gateway.charge = async (request) => {
    // The pending payment of 30.00 is written; the credit comes before the gateway answers.
    credit = await invoice('closing', '-10.00', '2034-04-21T00:00:00Z', '2034-05-01T00:00:00Z');
    await activities().refundCreditTotal({ invoiceId: credit.id });
    return charge(request);
  };
  expect(await activities(gateway).chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  expect(await succeededCharges(period)).toEqual(['30.00']);
  // The workflow's activity and the janitor after it: refunded once, 10.00.
  await activities().refundCreditTotal({ invoiceId: credit!.id });
  await activities().refundCreditTotal({ invoiceId: credit!.id });
  expect(await refundsOf(credit!)).toEqual([[period.id, '10.00', 'succeeded']]);
  expect(await gatewayRefunded(credit!)).toBe('10.00');
  expect(await statusOf(credit!.id)).toBe('paid');
  expect((await refundableBalance(db, period.id)).remaining.toFixed(2)).toBe('20.00');
  expect(await reported(credit!)).toBe(false);
});

test('a credit equal to what the unpaid invoice owes settles both without a charge or a refund', async () => {
  const { invoice, useCard } = await subscriptionWith('credit-whole', 'pm_sandbox_declined');
  const period = await invoice('proration', '10.00', '2034-04-16T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const credit = await invoice('closing', '-10.00', '2034-04-16T00:00:00Z', '2034-05-01T00:00:00Z');
  await activities().refundCreditTotal({ invoiceId: credit.id });
  await useCard('pm_sandbox_ok');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  expect(await succeededCharges(period)).toEqual([]);
  expect([await statusOf(period.id), await statusOf(credit.id)]).toEqual(['paid', 'paid']);
  expect(await refundsOf(credit)).toEqual([]);
});

test('a reversal note after the credit was taken off the charge is refunded, not settled with the credit’s share', async () => {
  const { period, credit, useCard } = await creditedWhileInDunning('credit-then-note');
  await useCard('pm_sandbox_ok');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded' });
  // Paid 20.00 (30.00 less the 10.00 credit); then a reversal note of 5.00 against the paid invoice.
  const refunds = await db.transaction(async (trx) => {
    const locked = (await trx<InvoiceRow>('invoices').where({ id: period.id }).forUpdate().first())!;
    await insertCreditNote(trx, locked, { total: '5.00', idempotencyKey: `reversal:${randomUUID()}`, reason: 'outcomes reversed' });
    return refundCreditNotesOfPaidInvoice(trx, locked);
  });
  // Without counting the credit's share of the take-off, the note was settled as taken off the charge: 0 refunded.
  expect(refunds.map((refund) => money(refund.amount))).toEqual(['5.00']);
  expect((await refundableBalance(db, period.id)).remaining.toFixed(2)).toBe('15.00');
  expect(await statusOf(credit.id)).toBe('paid');
});

// April 2034 (30 days): Apr 1 period invoice 12.00 (the 30.00 fee less 18.00 of prepaid credit); a paid invoice of
// April, 10.00 (an earlier proration); Apr 11 cancel now: 20 days unused, closing -20.00, more than the period invoice
// owes. By hand: 12.00 of the credit settles the period invoice (it owes 0.00), 20.00 - 12.00 = 8.00 is refunded from
// the paid one (10.00 paid, 2.00 left to refund).
async function creditLargerThanWhatIsOwed(code: string, periodCard: string) {
  const { invoice, useCard } = await subscriptionWith(code, 'pm_sandbox_ok');
  const paidOne = await invoice('proration', '10.00', '2034-04-06T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: paidOne.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  await useCard(periodCard);
  const period = await invoice('period', '12.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  return { invoice, useCard, paidOne, period };
}

test('a credit larger than what the unpaid period invoice owes settles it; only the rest is refunded', async () => {
  const { invoice, useCard, paidOne, period } = await creditLargerThanWhatIsOwed('credit-beyond-owed', 'pm_sandbox_declined');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const credit = await invoice('closing', '-20.00', '2034-04-11T00:00:00Z', '2034-05-01T00:00:00Z');
  await activities().refundCreditTotal({ invoiceId: credit.id });
  // Before: nothing taken off (the invoice owed less than the credit): 10.00 refunded from the paidOne invoice,
  // 10.00 reported owed, and dunning went on asking for all 12.00.
  expect(await refundsOf(credit)).toEqual([[paidOne.id, '8.00', 'succeeded']]);
  expect((await amountOwedAfterCreditNotes(db, period)).toFixed(2)).toBe('0.00');
  // The workflow's retry and the janitor: nothing more.
  await activities().refundCreditTotal({ invoiceId: credit.id });
  expect(await refundsOf(credit)).toEqual([[paidOne.id, '8.00', 'succeeded']]);
  expect(await reported(credit)).toBe(false);
  await useCard('pm_sandbox_ok');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  expect(await succeededCharges(period)).toEqual([]);
  expect([await statusOf(period.id), await statusOf(credit.id)]).toEqual(['paid', 'paid']);
  expect((await refundableBalance(db, paidOne.id)).remaining.toFixed(2)).toBe('2.00');
});

test('uncollectible, a credit larger than it owes leaves nothing to write off; the rest with no payment to refund it is reported owed', async () => {
  const { invoice } = await subscriptionWith('credit-beyond-uncollectible', 'pm_sandbox_declined');
  const period = await invoice('period', '12.00', '2034-04-01T00:00:00Z', '2034-05-01T00:00:00Z');
  expect(await activities().chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  await activities().markInvoiceUncollectible({ invoiceId: period.id, reason: 'dunning exhausted' });
  const credit = await invoice('closing', '-20.00', '2034-04-11T00:00:00Z', '2034-05-01T00:00:00Z');
  // Nothing of April is paid: 12.00 nets the uncollectible invoice, 8.00 is owed to the customer (before: 20.00
  // owed while the customer stayed billed 12.00).
  expect(await activities().refundCreditTotal({ invoiceId: credit.id })).toMatchObject({ status: 'not_refundable', detail: expect.stringContaining('8.00 USD') });
  expect((await amountOwedAfterCreditNotes(db, period)).toFixed(2)).toBe('0.00');
  expect(await refundsOf(credit)).toEqual([]);
  expect(await reported(credit)).toBe(true);
});

test('a credit larger than what is owed, applied while the charge is at the gateway for it, is refunded once in all (8.00 + 12.00)', async () => {
  const { invoice, paidOne, period } = await creditLargerThanWhatIsOwed('credit-beyond-race', 'pm_sandbox_ok');
  let credit: InvoiceRow | undefined;
  const gateway = new SandboxGateway(db);
  const charge = gateway.charge.bind(gateway);
  gateway.charge = async (request) => {
    // The pending payment of 12.00 is written; the credit takes the 12.00 still owed and refunds 8.00 before the answer.
    credit = await invoice('closing', '-20.00', '2034-04-11T00:00:00Z', '2034-05-01T00:00:00Z');
    await activities().refundCreditTotal({ invoiceId: credit.id });
    return charge(request);
  };
  expect(await activities(gateway).chargeInvoice({ invoiceId: period.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  expect(await succeededCharges(period)).toEqual(['12.00']);
  // The charge took nothing off: the 12.00 comes back from its payment, the 8.00 from the paidOne invoice's.
  await activities().refundCreditTotal({ invoiceId: credit!.id });
  expect(await refundsOf(credit!)).toEqual([[paidOne.id, '8.00', 'succeeded'], [period.id, '12.00', 'succeeded']]);
  expect(await gatewayRefunded(credit!)).toBe('20.00');
  expect(await statusOf(credit!.id)).toBe('paid');
  expect(await reported(credit!)).toBe(false);
});
