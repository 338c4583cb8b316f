/**
 * What a credit's document says became of the money. A refund the gateway refuses leaves the credit note `paid`
 * all the same (store/credit-notes.ts settleRefund: its amount goes to the customer's wallet instead), and the
 * document, reading only the status, told the customer "The amounts are credited to the customer and were
 * refunded": money back on their card that never went there. An invoice whose total is negative (a credit total,
 * refunded like a credit note) said nothing at all: "Final invoice", "paid", -10.00. The documents now read the
 * refund. API and a real Postgres.
 */
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { inspectPdf } from '../support/pdf';

let db: Database;
let api: ApiOnly;
let finance: TestApiKey;
let paid: InvoiceRow;
let paymentId: string;
let customerId: string;
let subscriptionId: string;

const APRIL = { period_start: new Date('2032-04-01T00:00:00Z'), period_end: new Date('2032-05-01T00:00:00Z') };

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db);
  finance = await createTestApiKey(db, 'finance');
  const customer = await insertCustomer(db, { name: 'Refused Refund Ltd' });
  const plan = await insertPlan(db, { code: 'credit-docs', billing_interval: 'P1M', flat_fee: '30.00' });
  const { row } = await insertSubscription(db, customer, plan, APRIL.period_start);
  customerId = customer.id;
  subscriptionId = row.id;
  [paid] = await db<InvoiceRow>('invoices')
    .insert({ number: 'INV-000501', customer_id: customerId, subscription_id: subscriptionId, kind: 'period', status: 'paid', currency: 'USD', ...APRIL, total: '30.00', finalized_at: APRIL.period_start, paid_at: APRIL.period_start })
    .returning('*');
  await db('invoice_lines').insert({ invoice_id: paid.id, position: 0, kind: 'flat_fee', description: 'Credit docs', quantity: '1', amount: '30.00', ...APRIL, breakdown: '{}' });
  [{ id: paymentId }] = await db('payments')
    .insert({ invoice_id: paid.id, attempt: 1, status: 'succeeded', amount: '30.00', currency: 'USD', payment_method: 'pm_sandbox_refund_declined', idempotency_key: `payment:${paid.id}:1` })
    .returning('id');
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** A settled credit document (credit note or negative invoice) with one line and its refund in `status`. */
async function creditWithRefund(invoice: Partial<InvoiceRow> & Record<string, unknown>, amount: string, refundStatus: 'succeeded' | 'failed'): Promise<string> {
  const [row] = await db<InvoiceRow>('invoices').insert({ customer_id: customerId, currency: 'USD', status: 'paid', ...APRIL, finalized_at: new Date('2032-04-20T00:00:00Z'), ...invoice }).returning('*');
  const total = row.total;
  await db('invoice_lines').insert({ invoice_id: row.id, position: 0, kind: invoice.kind === 'credit_note' ? 'refund' : 'proration', description: 'Credit', quantity: '1', amount: total, ...APRIL, breakdown: '{}' });
  await db('refunds').insert({
    credit_note_id: row.id, invoice_id: paid.id, payment_id: paymentId, amount, currency: 'USD', reason: 'test', status: refundStatus,
    idempotency_key: `refund:${row.id}`, failure_code: refundStatus === 'failed' ? 'refund_declined' : null,
  });
  return row.id;
}

async function notesOf(invoiceId: string): Promise<string[]> {
  const html = await api.http.call('GET', `/v1/invoices/${invoiceId}/document.html`, undefined, finance.headers);
  expect(html.status).toBe(200);
  return [...html.text.matchAll(/<p>([^<]*)<\/p>/g)].map((match) => match[1].replace(/&#39;/g, "'"));
}

test('a credit note whose refund the gateway refused does not say it was refunded: it says where the money went', async () => {
  const noteId = await creditWithRefund({ number: 'CN-000501', kind: 'credit_note', total: '12.00', credited_invoice_id: paid.id, idempotency_key: 'doc-refused', reason: 'Outage' }, '12.00', 'failed');
  const notes = await notesOf(noteId);
  // Before: [..., 'The amounts are credited to the customer and were refunded.']
  expect(notes).toEqual([
    'Credits invoice INV-000501.',
    'Reason: Outage',
    "The amounts are credited to the customer: the refund of 12.00 USD to the original payment was refused, so it was added to the customer's credit balance instead.",
  ]);
  const pdf = await fetch(`${api.http.baseUrl}/v1/invoices/${noteId}/document.pdf`, { headers: finance.headers });
  expect(inspectPdf(Buffer.from(await pdf.arrayBuffer())).text).not.toContain('were refunded');
});

test('a credit note refunded in part says how much went back', async () => {
  const noteId = await creditWithRefund({ number: 'CN-000502', kind: 'credit_note', total: '12.00', credited_invoice_id: paid.id, idempotency_key: 'doc-part', reason: 'Reversed outcomes' }, '7.50', 'succeeded');
  // Before: 'The amounts are credited to the customer and were refunded.' (12.00 in full)
  expect((await notesOf(noteId)).at(-1)).toBe('The amounts are credited to the customer: 7.50 USD was refunded to the original payment.');
});

test('an invoice whose total is negative, refunded, says it is a credit to the customer and that it was refunded', async () => {
  const creditId = await creditWithRefund({ number: 'INV-000502', subscription_id: subscriptionId, kind: 'closing', total: '-10.00' }, '10.00', 'succeeded');
  // Before: no notes at all ("Final invoice", status paid, total -10.00 USD).
  expect(await notesOf(creditId)).toEqual(['This invoice is a credit of 10.00 USD to the customer.', '10.00 USD was refunded to the original payment.']);
});
