/**
 * A re-rating that lowers an invoice nothing has paid yet: approved while the invoice is in dunning, or while its
 * first charge is at the gateway. The credit is taken off what the invoice still owes (a charge made after it collects
 * the rest), or refunded from the charge that was already at the gateway for the whole total, as a credit note for
 * reversed outcomes is (docs/pricing.md). Before, carrying it out failed (`invoice_not_paid`): the re-rating stayed
 * `approved`, nothing was credited, and dunning went on charging the uncorrected 20.00.
 *
 *   10.00 a month + 0.10 a call; 100 calls in January, invoiced on Feb 1: 20.00, unpaid
 *   re-rated at 0.08 a call: 8.00 instead of 10.00, a credit of 2.00 -> the customer pays 18.00 in the end
 * Real Postgres, the sandbox gateway, activities called directly.
 */
import { randomUUID } from 'node:crypto';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createPaymentActivities } from '../../activities/payments';
import { createReratingActivities } from '../../activities/rerating';
import { createRefundActivities } from '../../activities/refunds';
import type { ChargeRequest, ChargeResult, PaymentGateway, RefundRequest } from '../../payments/gateway';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert({ code: 'unpaid_calls', name: 'Calls', event_type: 'unpaid.call', aggregation: 'count' });
});

afterAll(async () => {
  await db?.destroy();
});

const callsAt = (unitPrice: string) => [{ metricCode: 'unpaid_calls', price: { model: 'per_unit', unitPrice } }] as never;
const january = { start: '2028-01-01T00:00:00.000Z', end: '2028-02-01T00:00:00.000Z' };
const february = { start: '2028-02-01T00:00:00.000Z', end: '2028-03-01T00:00:00.000Z' };

/** A gateway whose charges wait until released, so that a re-rating can be carried out while one is outstanding. */
class HeldGateway implements PaymentGateway {
  private readonly sandbox: SandboxGateway;
  held: { reached: Promise<void>; release: () => void } | null = null;
  constructor(database: Database) {
    this.sandbox = new SandboxGateway(database);
  }
  hold(): void {
    let reach = (): void => undefined;
    let release = (): void => undefined;
    const reached = new Promise<void>((resolve) => (reach = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.held = { reached, release };
    this.waitBeforeCharge = async () => {
      reach();
      await released;
    };
  }
  private waitBeforeCharge: () => Promise<void> = async () => undefined;
  async charge(request: ChargeRequest): Promise<ChargeResult> {
    await this.waitBeforeCharge();
    return this.sandbox.charge(request);
  }
  findCharge(idempotencyKey: string) {
    return this.sandbox.findCharge(idempotencyKey);
  }
  refund(request: RefundRequest) {
    return this.sandbox.refund(request);
  }
}

/** January invoiced on Feb 1 (20.00) and not paid; a plan version at 0.08 a call to re-rate it with. */
async function unpaidJanuary(name: string, paymentMethod: string) {
  const customer = await insertCustomer(db, { external_id: name, payment_method: paymentMethod });
  const plan = await insertPlan(db, { code: `unpaid-${name}`, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.10') });
  const cheaper = await insertPlan(db, { code: `unpaid-${name}`, version: 2, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.08') });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 100 }, (_, i) => ({ customerId: customer.id, eventId: `${name}-${i}`, eventType: 'unpaid.call', occurredAt: new Date('2028-01-15T00:00:00Z'), properties: {} })));
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: plan.id, charges: plan.charges as never }),
  );
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect(invoice.total).toBe('20.00');
  return { customerId: customer.id as string, subscriptionId: subscription.id as string, invoiceId: invoice.invoiceId, cheaperPlanId: cheaper.id };
}

/** Finance asks for the invoice at 0.08 a call and approves the proposed credit of 2.00; then it is carried out. */
async function rerateToCheaperPrice(target: Awaited<ReturnType<typeof unpaidJanuary>>) {
  const rerating = createReratingActivities(db);
  const rerateId = randomUUID();
  await db.transaction((trx) => insertRerate(trx, { id: rerateId, ...target, requestedBy: 'finance', reason: 'price fix', correctedPlanId: target.cheaperPlanId, includeLateUsage: false }));
  expect(await rerating.proposeRerate({ rerateId })).toMatchObject({ status: 'proposed', outcome: 'credit', total: '-2.00' });
  await rerating.recordRerateDecision({ rerateId, approved: true, by: 'finance', reason: 'ok' });
  return rerating.finalizeRerate({ rerateId });
}

const money = (rows: { amount?: string; total?: string; status: string }[]) => rows.map((row) => `${Number(row.amount ?? row.total).toFixed(2)} ${row.status}`);

test('approved while the invoice is in dunning: the credit comes off what the next attempt charges', async () => {
  const gateway = new HeldGateway(db);
  const payments = createPaymentActivities(db, gateway);
  const target = await unpaidJanuary('in-dunning', 'pm_sandbox_declined');
  expect(await payments.chargeInvoice({ invoiceId: target.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'declined' });

  const carriedOut = await rerateToCheaperPrice(target);
  expect(carriedOut).toMatchObject({ status: 'finalized', outcome: 'credit', resultInvoiceId: expect.any(String) });
  // The re-rating workflow's last step: nothing to send before the invoice is paid.
  expect(await createRefundActivities(db, gateway).refundCreditNote({ creditNoteId: carriedOut.resultInvoiceId! })).toEqual({ status: 'pending' });

  await db('customers').where({ id: target.customerId }).update({ payment_method: 'pm_sandbox_ok' });
  expect(await payments.chargeInvoice({ invoiceId: target.invoiceId, attempt: 2 })).toMatchObject({ outcome: 'succeeded' });
  expect(money(await db('payments').where({ invoice_id: target.invoiceId }).orderBy('attempt'))).toEqual(['20.00 failed', '18.00 succeeded']);
  expect(money(await db('invoices').where({ credited_invoice_id: target.invoiceId }))).toEqual(['2.00 paid']); // settled by the charge
  expect(await db('refunds').where({ invoice_id: target.invoiceId })).toEqual([]);
});

test('approved while the first charge is at the gateway for the whole total: the credit is refunded from that payment', async () => {
  const gateway = new HeldGateway(db);
  const payments = createPaymentActivities(db, gateway);
  const target = await unpaidJanuary('at-gateway', 'pm_sandbox_ok');
  gateway.hold();
  const charging = payments.chargeInvoice({ invoiceId: target.invoiceId, attempt: 1 });
  await gateway.held!.reached; // the attempt's row (20.00) is written, the gateway is asked

  const carriedOut = await rerateToCheaperPrice(target);
  expect(carriedOut).toMatchObject({ status: 'finalized', outcome: 'credit', resultInvoiceId: expect.any(String) });
  expect(await createRefundActivities(db, gateway).refundCreditNote({ creditNoteId: carriedOut.resultInvoiceId! })).toEqual({ status: 'pending' });

  gateway.held!.release();
  expect(await charging).toMatchObject({ outcome: 'succeeded' });
  expect(money(await db('payments').where({ invoice_id: target.invoiceId }))).toEqual(['20.00 succeeded']);
  // Refunded by the payment (sent after its commit); the workflow's step then finds it done.
  expect(await createRefundActivities(db, gateway).refundCreditNote({ creditNoteId: carriedOut.resultInvoiceId! })).toEqual({ status: 'succeeded' });
  expect(money(await db('refunds').where({ invoice_id: target.invoiceId }))).toEqual(['2.00 succeeded']);
});
