/**
 * A credit total (an invoice whose total is negative) refunded across several paid invoices has one refund per
 * payment (migration 0640). When the gateway pays one back and refuses another, the customer got part on their
 * card and part as wallet credit. The document summed the parts and took the worst status: "The refund of 30.00
 * USD to the original payment was refused, so it was added to the customer's credit balance instead" - 20.00 that
 * went back to the card told as wallet credit. API and a real Postgres.
 */
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let finance: TestApiKey;
let customerId: string;
let subscriptionId: string;

const MAY = { period_start: new Date('2032-05-01T00:00:00Z'), period_end: new Date('2032-06-01T00:00:00Z') };

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db);
  finance = await createTestApiKey(db, 'finance');
  const customer = await insertCustomer(db, { name: 'Split Refund Ltd' });
  const plan = await insertPlan(db, { code: 'split-refund-docs', billing_interval: 'P1M', flat_fee: '20.00' });
  const { row } = await insertSubscription(db, customer, plan, MAY.period_start);
  customerId = customer.id;
  subscriptionId = row.id;
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

async function paidInvoice(number: string, total: string, kind: string): Promise<{ invoice: InvoiceRow; paymentId: string }> {
  const [invoice] = await db<InvoiceRow>('invoices')
    .insert({ number, customer_id: customerId, subscription_id: subscriptionId, kind, status: 'paid', currency: 'USD', ...MAY, total, finalized_at: MAY.period_start, paid_at: MAY.period_start })
    .returning('*');
  await db('invoice_lines').insert({ invoice_id: invoice.id, position: 0, kind: 'flat_fee', description: 'Fee', quantity: '1', amount: total, ...MAY, breakdown: '{}' });
  const [{ id: paymentId }] = await db('payments')
    .insert({ invoice_id: invoice.id, attempt: 1, status: 'succeeded', amount: total, currency: 'USD', payment_method: 'pm_sandbox_ok', idempotency_key: `payment:${invoice.id}:1` })
    .returning('id');
  return { invoice, paymentId };
}

async function notesOf(invoiceId: string): Promise<string[]> {
  const html = await api.http.call('GET', `/v1/invoices/${invoiceId}/document.html`, undefined, finance.headers);
  expect(html.status).toBe(200);
  return [...html.text.matchAll(/<p>([^<]*)<\/p>/g)].map((match) => match[1].replace(/&#39;/g, "'"));
}

test('a credit total refunded 20.00 to the card and refused 10.00 (wallet) says both, not 30.00 refused', async () => {
  const first = await paidInvoice('INV-000701', '20.00', 'period');
  const second = await paidInvoice('INV-000702', '10.00', 'proration');
  const [credit] = await db<InvoiceRow>('invoices')
    .insert({ number: 'INV-000703', customer_id: customerId, subscription_id: subscriptionId, kind: 'closing', status: 'paid', currency: 'USD', ...MAY, total: '-30.00', finalized_at: new Date('2032-05-20T00:00:00Z') })
    .returning('*');
  await db('invoice_lines').insert({ invoice_id: credit.id, position: 0, kind: 'proration', description: 'Unused time', quantity: '1', amount: '-30.00', ...MAY, breakdown: '{}' });
  await db('refunds').insert([
    { credit_note_id: credit.id, invoice_id: first.invoice.id, payment_id: first.paymentId, amount: '20.00', currency: 'USD', reason: 'unused time', status: 'succeeded', idempotency_key: `refund:${credit.id}:1` },
    { credit_note_id: credit.id, invoice_id: second.invoice.id, payment_id: second.paymentId, amount: '10.00', currency: 'USD', reason: 'unused time', status: 'failed', failure_code: 'refund_declined', idempotency_key: `refund:${credit.id}:2` },
  ]);
  const notes = await notesOf(credit.id);
  expect(notes[0]).toBe('This invoice is a credit of 30.00 USD to the customer.');
  // Before: "The refund of 30.00 USD to the original payment was refused, so it was added to the customer's credit balance instead."
  expect(notes.slice(1).join(' ')).toContain('20.00 USD was refunded to the original payment');
  expect(notes.slice(1).join(' ')).toContain('10.00 USD');
  expect(notes.slice(1).join(' ')).not.toContain('30.00 USD to the original payment was refused');
});
