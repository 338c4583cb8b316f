/**
 * A charge whose amount was read before a credit note credited the invoice in full, racing a second collection of
 * the same invoice (the janitor's repair beside the workflow's first charge, both attempt 1) that sees the invoice
 * credited in full and settles it without a gateway call. Before, the first one then wrote its pending row and
 * charged the card the whole total for an invoice already settled: its markInvoicePaid found it paid, so nothing
 * refunded the notes either (money taken for nothing owed). Now the pending row is written under the invoice's row
 * lock after checking it is still chargeable and still owes that amount, and the no-charge settlement refuses while
 * a payment is pending.
 *
 *   A: read invoice open, owes 10.00 ... (blocked before writing its pending row) ............ insert, charge
 *   note 10.00 issued                    B: read invoice, owes 0.00 -> settled paid, no charge
 *
 * Real Postgres, the sandbox gateway, activities called directly.
 */
import Decimal from 'decimal.js';
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
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

const gateway = () => new SandboxGateway(db);
const activities = () => createActivities({ db, gateway: gateway() });

async function openInvoice(total: string, paymentMethod: string | null = 'pm_sandbox_ok'): Promise<InvoiceRow> {
  const customer = await insertCustomer(db, { currency: 'USD', payment_method: paymentMethod });
  const [row] = await db<InvoiceRow>('invoices')
    .insert({
      number: `RC-${randomUUID().slice(0, 8)}`,
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

async function reversalNote(invoice: InvoiceRow, total: string) {
  const refunds = await db.transaction(async (trx) => {
    const locked = (await trx<InvoiceRow>('invoices').where({ id: invoice.id }).forUpdate().first())!;
    await insertCreditNote(trx, locked, { total, idempotencyKey: `reversal:${randomUUID()}`, reason: 'outcomes reversed after the subscription ended' });
    return locked.status === 'paid' ? refundCreditNotesOfPaidInvoice(trx, locked) : [];
  });
  for (const refund of refunds) await executeRefund(db, gateway(), refund);
}

/**
 * The database as A sees it: its read of the customer's payment method (the last read before it writes its payment
 * row, with or without the fix) waits until `open()`, so the test can credit and settle the invoice in between.
 */
function gatedAtCustomerRead(): { db: Database; reached: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  let reach = (): void => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const reached = new Promise<void>((resolve) => (reach = resolve));
  const gated = new Proxy(db, {
    apply(target, thisArg, args: unknown[]) {
      const builder = Reflect.apply(target as unknown as (...a: unknown[]) => unknown, thisArg, args) as { then: (...a: unknown[]) => unknown };
      if (args[0] !== 'customers') return builder;
      const then = builder.then.bind(builder);
      builder.then = (...callbacks: unknown[]) => {
        reach();
        return gate.then(() => then(...callbacks));
      };
      return builder;
    },
  });
  return { db: gated, reached, open };
}

const money = async (table: string, column: string, invoice: InvoiceRow): Promise<string> => {
  const rows: { amount: string }[] =
    table === 'sandbox_gateway_charges'
      ? await db('sandbox_gateway_charges').where({ reference: invoice.id, status: 'succeeded' }).select('amount')
      : await db('sandbox_gateway_refunds as r')
          .join('sandbox_gateway_charges as c', 'c.id', 'r.charge_id')
          .where('c.reference', invoice.id)
          .select(`r.${column} as amount`);
  return rows.reduce((sum, row) => sum.plus(row.amount), new Decimal(0)).toFixed(2);
};

test('an invoice credited in full and settled by one collection is not charged by a racing one that read it before the credit', async () => {
  const invoice = await openInvoice('10.00');
  // A (the workflow's first charge) reads the invoice and what it owes (10.00), then waits before its payment row.
  const gate = gatedAtCustomerRead();
  const a = createActivities({ db: gate.db, gateway: gateway() }).chargeInvoice({ invoiceId: invoice.id, attempt: 1 });
  try {
    await gate.reached;
    await reversalNote(invoice, '10.00');
    // B: the janitor's repair (same attempt) sees nothing owed and settles the invoice without the gateway.
    await expect(activities().chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).resolves.toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  } finally {
    gate.open();
  }
  await expect(a).resolves.toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid' });
  const charged = await money('sandbox_gateway_charges', 'amount', invoice);
  const refunded = await money('sandbox_gateway_refunds', 'amount', invoice);
  // Before: charged 10.00, refunded 0.00 (the customer paid 10.00 for an invoice credited in full).
  expect({ charged: new Decimal(charged).minus(refunded).toFixed(2) }).toEqual({ charged: '0.00' });
  expect(await db('payments').where({ invoice_id: invoice.id, status: 'pending' })).toEqual([]);
});

test('a collection that found no payment method does not record a declined attempt on an invoice settled meanwhile', async () => {
  // Same race, the customer without a payment method: A's "no payment method" decline was written on the settled
  // invoice, with a payment.failed event (a dunning notice to the customer) for an invoice that owed nothing.
  const invoice = await openInvoice('10.00', null);
  const gate = gatedAtCustomerRead();
  const a = createActivities({ db: gate.db, gateway: gateway() }).chargeInvoice({ invoiceId: invoice.id, attempt: 1 });
  try {
    await gate.reached;
    await reversalNote(invoice, '10.00');
    await expect(activities().chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).resolves.toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  } finally {
    gate.open();
  }
  // Before: { outcome: 'declined', detail: 'payment_method_missing' } and one payment.failed event.
  await expect(a).resolves.toMatchObject({ outcome: 'succeeded', invoiceStatus: 'paid' });
  expect(await db('outbox').where({ aggregate_id: invoice.id, event_type: 'payment.failed' })).toHaveLength(0);
});
