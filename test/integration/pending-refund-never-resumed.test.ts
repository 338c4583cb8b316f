/**
 * A credit note's refund that the gateway did not answer (GatewayUnavailableError) stays pending. A refund request's
 * pending refund is resumed when the client repeats the request; but the refunds started by a payment (of credit
 * notes issued while their invoice was unpaid), by the ingestion of reversals and by the janitor have no one to
 * repeat them: nothing ever sends them again, and the customer's money stays with us. Expected: a janitor run
 * finds the stale pending refund and completes it under its own key.
 */
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { DEFAULT_RECONCILIATION_MARGINS } from '../../contract/janitor';
import { GatewayUnavailableError, PaymentGateway } from '../../payments/gateway';
import { resumeStalePendingRefunds } from '../../payments/refunds';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { insertCreditNote } from '../../store/credit-notes';
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

/** An unpaid invoice with a 4.00 credit note, paid while the gateway does not answer refunds: the note's refund pending. */
async function pendingRefundAfterPayment(): Promise<{ noteId: string; sandbox: SandboxGateway }> {
  const customer = await insertCustomer(db);
  const [invoice] = await db<InvoiceRow>('invoices')
    .insert({
      number: `INV-P${randomUUID().slice(0, 8)}`,
      customer_id: customer.id,
      kind: 'closing',
      status: 'open',
      currency: 'USD',
      period_start: new Date('2030-03-01T00:00:00Z'),
      period_end: new Date('2030-04-01T00:00:00Z'),
      total: '10.00',
      finalized_at: new Date(),
    })
    .returning('*');
  // The payment succeeds; the gateway does not answer the refund that follows it. A credit note (reversed outcomes)
  // is issued while the charge for the whole total is at the gateway: it is refunded once the invoice is paid (one
  // issued before the charge is taken off it instead, activities/payments.ts).
  const sandbox = new SandboxGateway(db);
  let noteId: string | undefined;
  const outage: PaymentGateway = {
    charge: async (request) => {
      noteId ??= (await db.transaction((trx) => insertCreditNote(trx, invoice, { total: '4.00', idempotencyKey: `reversal:${randomUUID()}`, reason: 'outcomes reversed' }))).id;
      return sandbox.charge(request);
    },
    findCharge: (key) => sandbox.findCharge(key),
    refund: async () => {
      throw new GatewayUnavailableError('sandbox: connection reset');
    },
  };
  expect(await createActivities({ db, gateway: outage }).chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  expect(await db('refunds').where({ credit_note_id: noteId! }).select('status')).toEqual([{ status: 'pending' }]);
  return { noteId: noteId!, sandbox };
}

async function refundState(noteId: string) {
  const refund = await db('refunds').where({ credit_note_id: noteId }).first();
  return { refund: refund.status, creditNote: (await db('invoices').where({ id: noteId }).first()).status };
}

// Before, this failed: the janitor never looked at pending refunds ({ refund: 'pending', creditNote: 'open' }).
test('a credit note refund left pending by a gateway outage during the payment is completed by the janitor', async () => {
  const { noteId, sandbox } = await pendingRefundAfterPayment();
  // A day later, the janitor runs with the gateway back: every repair its scan lists.
  const janitor = createActivities({ db, gateway: sandbox });
  const scan = await janitor.scanForReconciliation({ asOf: new Date(Date.now() + 86_400_000).toISOString(), margins: DEFAULT_RECONCILIATION_MARGINS });
  for (const payment of scan.unknownPayments) await janitor.settleUnknownPayment(payment);
  for (const uncollected of scan.uncollectedInvoices) await janitor.collectUncollectedInvoice(uncollected);
  for (const owed of scan.owedReversalCredits ?? []) await janitor.creditOwedReversals(owed);

  expect(await refundState(noteId)).toEqual({ refund: 'succeeded', creditNote: 'paid' });
});

test('resumeStalePendingRefunds completes a stale pending refund once, under its own key', async () => {
  const { noteId, sandbox } = await pendingRefundAfterPayment();
  // Not stale yet: left alone (the caller that started it may still be waiting for the gateway).
  expect(await resumeStalePendingRefunds(db, sandbox, new Date(Date.now() - 60_000), 10)).toEqual([]);
  const later = new Date(Date.now() + 86_400_000);
  const resumed = await resumeStalePendingRefunds(db, sandbox, later, 200);
  expect(resumed.filter(({ refund }) => refund.credit_note_id === noteId).map(({ status }) => status)).toEqual(['succeeded']);
  expect(await refundState(noteId)).toEqual({ refund: 'succeeded', creditNote: 'paid' });
  expect(await resumeStalePendingRefunds(db, sandbox, later, 200)).toEqual([]);
  expect(await db('sandbox_gateway_refunds').where({ idempotency_key: `refund:${noteId}` })).toHaveLength(1);
});
