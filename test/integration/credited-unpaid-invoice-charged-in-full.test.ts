/**
 * An invoice credited by a credit note (a usage reversal after the subscription ended, store/reversal-credit-notes.ts)
 * before it is paid: the charge collects what it still owes, and an invoice credited in full is settled without a
 * gateway charge. Before, the full total was charged (in dunning, every retry asked for the full total) and the note
 * refunded afterwards: money taken that the customer did not owe, and a card charged for an invoice owing nothing.
 * Real Postgres, the sandbox gateway, activities called directly.
 */
import Decimal from 'decimal.js';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { insertCreditNote, issueCreditNote, refundableBalance } from '../../store/credit-notes';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

async function openInvoice(total: string, currency = 'USD', paymentMethod = 'pm_sandbox_ok'): Promise<InvoiceRow> {
  const customer = await insertCustomer(db, { currency, payment_method: paymentMethod });
  const [row] = await db<InvoiceRow>('invoices')
    .insert({
      number: `CR-${randomUUID().slice(0, 8)}`,
      customer_id: customer.id,
      subscription_id: null,
      kind: 'closing',
      status: 'open',
      currency,
      period_start: new Date('2031-01-01T00:00:00Z'),
      period_end: new Date('2031-02-01T00:00:00Z'),
      total,
      finalized_at: new Date(),
    })
    .returning('*');
  return row;
}

/** A credit note as the reversal path issues it: under the invoice's row lock, no refund while it is unpaid. */
const creditNote = (invoice: InvoiceRow, total: string) =>
  db.transaction(async (trx) => {
    const locked = (await trx<InvoiceRow>('invoices').where({ id: invoice.id }).forUpdate().first())!;
    return insertCreditNote(trx, locked, { total, idempotencyKey: `reversal:${randomUUID()}`, reason: 'outcomes reversed after the subscription ended' });
  });

const activities = () => createActivities({ db, gateway: new SandboxGateway(db) });
const charged = async (invoice: InvoiceRow) =>
  (await db('sandbox_gateway_charges').where({ reference: invoice.id }).orderBy('created_at').select('amount', 'status')).map((row: { amount: string; status: string }) => [
    new Decimal(row.amount).toFixed(2),
    row.status,
  ]);
const refundsOf = (invoice: InvoiceRow) => db('refunds').where({ invoice_id: invoice.id }).select('amount');
const statusOf = async (id: string) => (await db<InvoiceRow>('invoices').where({ id }).first())!.status;

test('an invoice credited in part before it is paid is charged what it still owes, and the note is not refunded', async () => {
  // Closing invoice 10.00; two resolutions reversed (4.00) before the charge.
  const invoice = await openInvoice('10.00');
  const note = await creditNote(invoice, '4.00');
  expect(await activities().chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid' });
  // Before: [['10.00', 'succeeded']] and a 4.00 refund of the note.
  expect(await charged(invoice)).toEqual([['6.00', 'succeeded']]);
  expect(await refundsOf(invoice)).toEqual([]);
  expect(await statusOf(note.id)).toBe('paid');
  // What can still be refunded is what was paid: 6.00 (not 6.00 − 4.00).
  expect((await refundableBalance(db, invoice.id)).remaining.toFixed(2)).toBe('6.00');
  await issueCreditNote(db, { invoiceId: invoice.id, amount: new Decimal('6.00'), reason: 'all of it', idempotencyKey: `all-${randomUUID()}`, actor: 'test' });
  expect((await refundableBalance(db, invoice.id)).remaining.toFixed(2)).toBe('0.00');
});

test('an invoice credited in full before it is paid is settled without a gateway charge', async () => {
  const invoice = await openInvoice('10.00');
  const note = await creditNote(invoice, '10.00');
  expect(await activities().chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid' });
  // Before: [['10.00', 'succeeded']], then a 10.00 refund.
  expect(await charged(invoice)).toEqual([]);
  expect(await refundsOf(invoice)).toEqual([]);
  expect([await statusOf(invoice.id), await statusOf(note.id)]).toEqual(['paid', 'paid']);
});

test('in dunning, the retry after a credit note asks for what is still owed', async () => {
  // JPY (no minor unit): 1000 declined; a note of 300 issued; the retry with a working card collects 700.
  const invoice = await openInvoice('1000', 'JPY', 'pm_sandbox_declined');
  expect(await activities().chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  await creditNote(invoice, '300');
  await db('customers').where({ id: invoice.customer_id }).update({ payment_method: 'pm_sandbox_ok' });
  expect(await activities().chargeInvoice({ invoiceId: invoice.id, attempt: 2 })).toMatchObject({ outcome: 'succeeded' });
  // Before: the retry charged 1000 again (and refunded 300 after).
  expect((await charged(invoice)).filter(([, status]) => status === 'succeeded')).toEqual([['700.00', 'succeeded']]);
  expect(await refundsOf(invoice)).toEqual([]);
});

test('a note issued while the charge is at the gateway is refunded from it once it is paid', async () => {
  // The pending payment (10.00) is written; a note of 4.00 comes before the gateway answers: the charge collected
  // the whole total, so the note is refunded once the invoice is paid (as before this change).
  const invoice = await openInvoice('10.00');
  const gateway = new SandboxGateway(db);
  const charge = gateway.charge.bind(gateway);
  gateway.charge = async (request) => {
    await creditNote(invoice, '4.00');
    return charge(request);
  };
  expect(await createActivities({ db, gateway }).chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  expect(await charged(invoice)).toEqual([['10.00', 'succeeded']]);
  expect((await refundsOf(invoice)).map((row: { amount: string }) => new Decimal(row.amount).toFixed(2))).toEqual(['4.00']);
  expect((await refundableBalance(db, invoice.id)).remaining.toFixed(2)).toBe('6.00');
});
