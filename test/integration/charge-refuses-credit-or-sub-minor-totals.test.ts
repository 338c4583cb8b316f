/**
 * chargeInvoice is the one door to the gateway: an invoice whose total is a credit (negative), or has more decimals
 * than its currency (1000.5 JPY, 1.2345 KWD), is refused there, whoever asks (the workflows skip credit totals
 * themselves; a repair, a re-rating or a future caller may not). Before, the sandbox ledger recorded a charge of
 * -5.00 USD that "succeeded" and paid the invoice, and a charge of 1000.5 JPY. Real Postgres.
 */
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { SandboxGateway } from '../../payments/sandbox-gateway';
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

async function openInvoice(total: string, currency: string): Promise<InvoiceRow> {
  const customer = await insertCustomer(db, { currency });
  const [row] = await db<InvoiceRow>('invoices')
    .insert({
      number: `TEST-${randomUUID().slice(0, 8)}`,
      customer_id: customer.id,
      subscription_id: null,
      kind: 'period',
      status: 'open',
      currency,
      period_start: new Date('2030-01-01T00:00:00Z'),
      period_end: new Date('2030-02-01T00:00:00Z'),
      total,
      finalized_at: new Date(),
    })
    .returning('*');
  return row;
}

test.each([
  ['-5.00', 'USD'],
  ['1000.5', 'JPY'],
  ['1.2345', 'KWD'],
])('an open invoice of %s %s is refused before the gateway, and nothing is written', async (total, currency) => {
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  const invoice = await openInvoice(total, currency);
  const outcome = await activities.chargeInvoice({ invoiceId: invoice.id, attempt: 1 }).then(
    (result) => ({ charged: result.outcome }),
    (error: { type?: string; nonRetryable?: boolean }) => ({ refused: error.type, nonRetryable: error.nonRetryable }),
  );
  const ledger = await db('sandbox_gateway_charges').where({ reference: invoice.id });
  // Before: { charged: 'succeeded' } and one ledger row of the invoice's total.
  expect({ outcome, ledger: ledger.map((row: { amount: string }) => row.amount) }).toEqual({ outcome: { refused: 'invoice_not_chargeable', nonRetryable: true }, ledger: [] });
  expect(await db('payments').where({ invoice_id: invoice.id })).toEqual([]);
  expect((await db<InvoiceRow>('invoices').where({ id: invoice.id }).first())!.status).toBe('open');
});
