/**
 * The same pending refund sent to the gateway twice at once (a repeated request and the first one, the ingestion
 * pass and the janitor, an activity retried while its first try still runs). The gateway answers once per
 * idempotency key, so the second call must get the first call's refund: before, the sandbox answered it
 * `amount_exceeds_charge` (or failed on its unique key), and whichever answer was recorded first won, so a refund
 * whose money went back could be recorded as refused (and its credit note voided or credited a second time).
 */
import { randomUUID } from 'node:crypto';
import { createActivities } from '../../activities';
import { toDecimal } from '../../domain/money';
import type { PaymentGateway, RefundRequest } from '../../payments/gateway';
import { executeRefund } from '../../payments/refunds';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import { issueCreditNote } from '../../store/credit-notes';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

async function paidInvoice(total: string): Promise<InvoiceRow> {
  const customer = await insertCustomer(db);
  const [invoice] = await db<InvoiceRow>('invoices')
    .insert({
      number: `INV-C${randomUUID().slice(0, 8)}`,
      customer_id: customer.id,
      kind: 'period',
      status: 'open',
      currency: 'USD',
      period_start: new Date('2030-03-01T00:00:00Z'),
      period_end: new Date('2030-04-01T00:00:00Z'),
      total,
      finalized_at: new Date(),
    })
    .returning('*');
  const { chargeInvoice } = createActivities({ db, gateway: new SandboxGateway(db) });
  expect(await chargeInvoice({ invoiceId: invoice.id, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  return invoice;
}

test.each([
  ['the whole payment', '20.00'],
  ['part of the payment', '5.00'],
])('two concurrent sends of one refund of %s: refunded once, recorded as succeeded', async (_name, amount) => {
  const invoice = await paidInvoice('20.00');
  const { refund } = await issueCreditNote(db, { invoiceId: invoice.id, amount: toDecimal(amount), reason: 'race', idempotencyKey: randomUUID(), actor: 'test' });
  const gateway = new SandboxGateway(db);
  const charge = await db('sandbox_gateway_charges').where({ reference: invoice.id, status: 'succeeded' }).first();

  // Both sends get past the gateway's "already refunded under this key?" check before either records its refund.
  const holder = await db.transaction();
  try {
    await holder('sandbox_gateway_charges').where({ id: charge.id }).forUpdate();
    const waiting = async (count: number) =>
      eventually(async () => Number((await db.raw("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).rows[0].n) >= count, `${count} waiting`);
    // The first send's answer comes back last (a slow network), after the second's was recorded.
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const slowAnswer = { ...gateway, refund: async (request: RefundRequest) => gateway.refund(request).then(async (result) => (await released, result)) };
    const first = executeRefund(db, slowAnswer as PaymentGateway, refund).then((settled) => settled.refund, (error: Error) => error.message);
    await waiting(1);
    const second = executeRefund(db, gateway, refund).then((settled) => settled.refund, (error: Error) => error.message);
    await waiting(2);
    await holder.commit();
    const secondResult = await second;
    release();
    const results = [await first, secondResult];
    expect(results.map((result) => (typeof result === 'string' ? result : `${result.status}${result.failure_code ? ` ${result.failure_code}` : ''}`))).toEqual(['succeeded', 'succeeded']);
  } finally {
    if (!holder.isCompleted()) await holder.rollback();
  }
  const refunds = await db('sandbox_gateway_refunds').where({ charge_id: charge.id });
  expect(refunds).toHaveLength(1);
  expect(await db('refunds').where({ id: refund.id }).first()).toMatchObject({ status: 'succeeded', gateway_refund_id: refunds[0].id });
  expect(await db('invoices').where({ id: refund.credit_note_id }).first()).toMatchObject({ status: 'paid' });
});
