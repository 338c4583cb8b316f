/**
 * Credit notes worth more than their invoice's total (several reversal notes, store/reversal-credit-notes.ts: the
 * note credits the invoice that billed the period's usage, which threshold invoices may have billed in part). The
 * charge takes what it can off the invoice and the payment refunds what it has left; before, the rest was owed to the
 * customer and nothing paid it back or reported it: the note was settled (`paid`) with money missing. Now the janitor
 * reports it as `unrefunded_credit` on the credited invoice, every run while it is owed.
 * Real Postgres, the sandbox gateway, activities called directly.
 */
import Decimal from 'decimal.js';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { DEFAULT_RECONCILIATION_MARGINS } from '../../contract/janitor';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { insertCreditNote, refundCreditNotesOfPaidInvoice } from '../../store/credit-notes';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { executeRefund } from '../../payments/refunds';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

async function openInvoice(total: string): Promise<InvoiceRow> {
  const customer = await insertCustomer(db, { currency: 'USD', payment_method: 'pm_sandbox_ok' });
  const [row] = await db<InvoiceRow>('invoices')
    .insert({
      number: `BX-${randomUUID().slice(0, 8)}`,
      customer_id: customer.id,
      subscription_id: null,
      kind: 'closing',
      status: 'open',
      currency: 'USD',
      period_start: new Date('2032-01-01T00:00:00Z'),
      period_end: new Date('2032-02-01T00:00:00Z'),
      total,
      finalized_at: new Date(Date.now() - 60_000),
    })
    .returning('*');
  return row;
}

const gateway = () => new SandboxGateway(db);
const activities = () => createActivities({ db, gateway: gateway() });

/** A reversal credit note as ingestion issues it: under the invoice's row lock, refunded at once when it is paid. */
async function reversalNote(invoice: InvoiceRow, total: string) {
  const refunds = await db.transaction(async (trx) => {
    const locked = (await trx<InvoiceRow>('invoices').where({ id: invoice.id }).forUpdate().first())!;
    await insertCreditNote(trx, locked, { total, idempotencyKey: `reversal:${randomUUID()}`, reason: 'outcomes reversed after the subscription ended' });
    return locked.status === 'paid' ? refundCreditNotesOfPaidInvoice(trx, locked) : [];
  });
  for (const refund of refunds) await executeRefund(db, gateway(), refund);
}

const findings = async (invoice: InvoiceRow) => {
  const scan = await activities().scanForReconciliation({ asOf: new Date().toISOString(), margins: { ...DEFAULT_RECONCILIATION_MARGINS, pendingPaymentMs: 0, uncollectedInvoiceMs: 0, reversalCreditMs: 0 } });
  return scan.flagged.filter((finding) => finding.subjectId === invoice.id).map((finding) => [finding.kind, finding.detail.match(/owed ([0-9.]+)/)?.[1]]);
};

test('notes over an unpaid invoice credit it in full, and what they credit beyond its total is reported as owed', async () => {
  // Closing invoice 10.00, unpaid; two reversal notes of 6.00 each (12.00). The charge collects nothing; 2.00 is owed.
  const invoice = await openInvoice('10.00');
  await reversalNote(invoice, '6.00');
  await reversalNote(invoice, '6.00');
  expect(await activities().chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  // Before: [] (nothing refunds the 2.00, nothing reports it).
  expect(await findings(invoice)).toEqual([['unrefunded_credit', '2.00']]);
});

test('notes over a paid invoice are refunded as far as its payment goes, and the rest is reported as owed', async () => {
  // Closing invoice 10.00 paid 10.00; reversal notes of 6.00 and 6.00: 6.00 and 4.00 refunded, 2.00 owed.
  const invoice = await openInvoice('10.00');
  expect(await activities().chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  await reversalNote(invoice, '6.00');
  await reversalNote(invoice, '6.00');
  expect((await db('refunds').where({ invoice_id: invoice.id }).select('amount')).map((row: { amount: string }) => new Decimal(row.amount).toFixed(2))).toEqual(['6.00', '4.00']);
  // Before: [].
  expect(await findings(invoice)).toEqual([['unrefunded_credit', '2.00']]);
});

test('notes the charge and the payment cover are not reported', async () => {
  // 10.00 with a 4.00 note while unpaid (charged 6.00), then a 5.00 note once paid (refunded 5.00 of the 6.00).
  const invoice = await openInvoice('10.00');
  await reversalNote(invoice, '4.00');
  expect(await activities().chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  await reversalNote(invoice, '5.00');
  expect(await findings(invoice)).toEqual([]);
});
