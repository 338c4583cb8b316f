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
import { createThresholdActivities } from '../../activities/thresholds';
import type { ChargeRequest, ChargeResult, PaymentGateway, RefundRequest } from '../../payments/gateway';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import { insertRerate } from '../../store/rerates';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { listCreditNotesOwedBeyondRefunds } from '../../store/credit-notes';
import { marginReport } from '../../store/margins';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan } from '../support/fixtures';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
  await db('billable_metrics').insert([
    { code: 'unpaid_calls', name: 'Calls', event_type: 'unpaid.call', aggregation: 'count' },
    { code: 'unpaid_units', name: 'Units', event_type: 'unpaid.units', aggregation: 'sum', property: 'n' },
  ]);
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

/** January invoiced on Feb 1 (20.00) and not paid; a plan version at a cheaper price (0.08 a call) to re-rate it with. */
async function unpaidJanuary(name: string, paymentMethod: string, cheaperPrice = '0.08') {
  const customer = await insertCustomer(db, { external_id: name, payment_method: paymentMethod });
  const plan = await insertPlan(db, { code: `unpaid-${name}`, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.10') });
  const cheaper = await insertPlan(db, { code: `unpaid-${name}`, version: 2, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt(cheaperPrice) });
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

/** Finance asks for the invoice at the cheaper price and approves the proposed credit (2.00 at 0.08 a call); then it is carried out. */
async function rerateToCheaperPrice(target: Awaited<ReturnType<typeof unpaidJanuary>>, credit = '-2.00') {
  const rerating = createReratingActivities(db);
  const rerateId = randomUUID();
  await db.transaction((trx) => insertRerate(trx, { id: rerateId, ...target, requestedBy: 'finance', reason: 'price fix', correctedPlanId: target.cheaperPlanId, includeLateUsage: false }));
  expect(await rerating.proposeRerate({ rerateId })).toMatchObject({ status: 'proposed', outcome: 'credit', total: credit });
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

/**
 * Owing less than the credit: a paid threshold invoice collected most of January, the period invoice is in dunning.
 *   10.00 a month + 0.25 a unit, threshold 100.00
 *   Jan 10  450 units = 112.50: threshold invoice, paid
 *   Feb 1   500 units = 125.00: period invoice 10.00 + 125.00 − 112.50 = 22.50, declined
 *   re-rated at 0.20 a unit: 100.00, a credit of 25.00: 22.50 off what the period invoice owes (its next attempt
 *   collects nothing), 2.50 refunded from the threshold invoice's payment
 *   paid in the end 112.50 − 2.50 = 110.00 = 10.00 + 500 × 0.20
 * Before: the re-rating failed (invoice_not_paid), nothing was credited, and dunning went on for 22.50.
 */
test('approved while an invoice owing less than the credit is in dunning: what it owes is credited, the rest refunded from the threshold invoice', async () => {
  const customer = await insertCustomer(db, { external_id: 'owes-less', payment_method: 'pm_sandbox_ok' });
  const plan = (version: number, unitPrice: string) =>
    insertPlan(db, {
      code: 'unpaid-owes-less', version, billing_interval: 'P1M', flat_fee: '10.00',
      charges: [{ metricCode: 'unpaid_units', price: { model: 'per_unit', unitPrice } }] as never,
      settings: { usageThresholds: { amounts: ['100.00'] } },
    });
  const [listed, fixed] = [await plan(1, '0.25'), await plan(2, '0.20')];
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: listed.id, status: 'active', workflow_id: 'direct:owes-less', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const units = (id: string, n: string, at: string) => insertUsageEvents(db, [{ customerId: customer.id, eventId: id, eventType: 'unpaid.units', occurredAt: new Date(at), properties: { n } }]);
  const gateway = new HeldGateway(db);
  const payments = createPaymentActivities(db, gateway);

  await units('u1', '450', '2028-01-10T00:00:00Z');
  const threshold = (await createThresholdActivities(db).createThresholdInvoice({ subscriptionId: subscription.id, usageStart: january.start, at: '2028-01-10T01:00:00.000Z', planId: listed.id })).invoice!;
  expect(await payments.chargeInvoice({ invoiceId: threshold.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  await units('u2', '50', '2028-01-20T00:00:00Z');
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: listed.id, charges: listed.charges as never }));
  const period = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect([threshold.total, period.total]).toEqual(['112.50', '22.50']);
  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_declined' });
  expect(await payments.chargeInvoice({ invoiceId: period.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'declined' });

  const carriedOut = await rerateToCheaperPrice({ customerId: customer.id, subscriptionId: subscription.id, invoiceId: period.invoiceId, cheaperPlanId: fixed.id }, '-25.00');
  expect(carriedOut).toMatchObject({ status: 'finalized', outcome: 'credit' });
  const notes = await db('invoices').where({ kind: 'credit_note' }).whereIn('credited_invoice_id', [period.invoiceId, threshold.invoiceId]).orderBy('total', 'desc');
  expect(notes.map((note) => [note.credited_invoice_id, Number(note.total).toFixed(2)])).toEqual([[period.invoiceId, '22.50'], [threshold.invoiceId, '2.50']]);
  expect(carriedOut.resultInvoiceId).toBe(notes[0].id);
  expect(await createRefundActivities(db, gateway).refundCreditNote({ creditNoteId: carriedOut.resultInvoiceId! })).toEqual({ status: 'pending' });

  // The next attempt has nothing to collect; the threshold invoice's refund is sent (the janitor sends stale ones).
  expect(await payments.chargeInvoice({ invoiceId: period.invoiceId, attempt: 2 })).toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  expect(await createRefundActivities(db, gateway).refundCreditNote({ creditNoteId: notes[1].id })).toEqual({ status: 'succeeded' });
  expect(money(await db('payments').whereIn('invoice_id', [threshold.invoiceId, period.invoiceId]).orderBy('created_at'))).toEqual(['112.50 succeeded', '22.50 failed']);
  expect(money(await db('refunds').whereIn('invoice_id', [threshold.invoiceId, period.invoiceId]))).toEqual(['2.50 succeeded']);
  expect(money(await db('invoices').whereIn('id', notes.map((note) => note.id)).orderBy('total', 'desc'))).toEqual(['22.50 paid', '2.50 paid']);
});

/**
 * Owing less than the credit with nothing paid: a downgrade's credit total (−15.00) was taken off the invoice in dunning.
 *   20.00 − 15.00: owes 5.00; re-rated at 0.02 a call: 2.00 instead of 10.00, a credit of 8.00
 *   the invoice is worth 12.00 now, less the 15.00 credit: the customer owes nothing and is owed 3.00, which no payment
 *   can refund (nothing was paid): the note keeps it, the invoice is settled without a charge, and the janitor's
 *   query lists the 3.00 as owed to the customer (`unrefunded_credit`).
 * Before: the re-rating failed (invoice_not_paid) and dunning went on for 5.00.
 */
test('approved while a credit total took most of the invoice: its next attempt collects nothing and the rest is reported as owed', async () => {
  const gateway = new HeldGateway(db);
  const payments = createPaymentActivities(db, gateway);
  const target = await unpaidJanuary('credit-total', 'pm_sandbox_declined', '0.02');
  expect(await payments.chargeInvoice({ invoiceId: target.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  const invoice = await db('invoices').where({ id: target.invoiceId }).first();
  await db('invoices').insert({
    number: 'CT-credit-total', customer_id: target.customerId, subscription_id: target.subscriptionId, kind: 'proration', status: 'open', currency: 'USD',
    period_start: invoice.period_start, period_end: invoice.period_end, total: '-15.00', finalized_at: new Date(), credited_invoice_id: target.invoiceId,
  });

  const carriedOut = await rerateToCheaperPrice(target, '-8.00');
  expect(carriedOut).toMatchObject({ status: 'finalized', outcome: 'credit', resultInvoiceId: expect.any(String) });
  expect(money(await db('invoices').where({ kind: 'credit_note', credited_invoice_id: target.invoiceId }))).toEqual(['8.00 open']);
  expect(await payments.chargeInvoice({ invoiceId: target.invoiceId, attempt: 2 })).toMatchObject({ outcome: 'succeeded', detail: 'nothing to collect' });
  expect(money(await db('payments').where({ invoice_id: target.invoiceId }).orderBy('attempt'))).toEqual(['20.00 failed']);
  const owed = (await listCreditNotesOwedBeyondRefunds(db, new Date(Date.now() + 60_000), 100)).find((row) => row.id === target.invoiceId);
  expect(Number(owed?.owed).toFixed(2)).toBe('3.00');
});

/**
 * Undoing an adjustment whose charge was declined: the credit comes off what the adjustment owes, not out of the
 * period invoice's payment.
 *   Feb 1   January 20.00 (10.00 + 100 × 0.10), paid
 *   re-rated at 0.12: +2.00 adjustment, its charge declined
 *   re-rated back at 0.10: −2.00, an open note against the adjustment (its next attempt collects nothing), no refund:
 *   paid in the end 20.00. Before: 2.00 refunded from January's payment while the adjustment still owed 2.00 (once
 *   uncollectible, the customer had 2.00 back that was never paid: 18.00 for a 20.00 month).
 */
test('undoing an adjustment still unpaid: the credit comes off what the adjustment owes, nothing is refunded', async () => {
  const gateway = new HeldGateway(db);
  const payments = createPaymentActivities(db, gateway);
  const target = await unpaidJanuary('undo-unpaid-adjustment', 'pm_sandbox_ok', '0.12');
  expect(await payments.chargeInvoice({ invoiceId: target.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  const rerating = createReratingActivities(db);
  const rerate = async (correctedPlanId: string, total: string) => {
    const rerateId = randomUUID();
    await db.transaction((trx) => insertRerate(trx, { id: rerateId, ...target, requestedBy: 'finance', reason: 'price', correctedPlanId, includeLateUsage: false }));
    expect(await rerating.proposeRerate({ rerateId })).toMatchObject({ status: 'proposed', total });
    await rerating.recordRerateDecision({ rerateId, approved: true, by: 'finance', reason: 'ok' });
    return rerating.finalizeRerate({ rerateId });
  };
  const adjustmentId = (await rerate(target.cheaperPlanId, '2.00')).resultInvoiceId!;
  await db('customers').where({ id: target.customerId }).update({ payment_method: 'pm_sandbox_declined' });
  expect(await payments.chargeInvoice({ invoiceId: adjustmentId, attempt: 1 })).toMatchObject({ outcome: 'declined' });

  const [listed] = await db('plans').where({ code: 'unpaid-undo-unpaid-adjustment', version: 1 });
  const undone = await rerate(listed.id, '-2.00');
  expect(money(await db('invoices').where({ credited_invoice_id: adjustmentId }))).toEqual(['2.00 open']);
  expect(undone.resultInvoiceId).toBe((await db('invoices').where({ credited_invoice_id: adjustmentId }).first()).id);
  expect(await db('invoices').where({ credited_invoice_id: target.invoiceId })).toEqual([]);

  await db('customers').where({ id: target.customerId }).update({ payment_method: 'pm_sandbox_ok' });
  expect(await payments.chargeInvoice({ invoiceId: adjustmentId, attempt: 2 })).toMatchObject({ invoiceStatus: 'paid' });
  expect(money(await db('payments').where({ invoice_id: adjustmentId }).orderBy('attempt'))).toEqual(['2.00 failed']);
  expect(await db('refunds').whereIn('invoice_id', [target.invoiceId, adjustmentId])).toEqual([]);
});

/**
 * The same undo once dunning gave the adjustment up (`uncollectible`, still collectible should money arrive): it
 * never collected the 2.00, so the credit comes off what it owes, not out of January's payment.
 *   January 20.00 paid; +2.00 adjustment declined, then uncollectible; re-rated back: −2.00 as an open note against it
 *   Paid in the end: 20.00. Before: 2.00 refunded from January's payment, 18.00 for a 20.00 month.
 */
test('undoing an adjustment dunning gave up on: the credit comes off what it owes, nothing is refunded', async () => {
  const payments = createPaymentActivities(db, new SandboxGateway(db));
  const target = await unpaidJanuary('undo-uncollectible-adjustment', 'pm_sandbox_ok', '0.12');
  expect(await payments.chargeInvoice({ invoiceId: target.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  const rerating = createReratingActivities(db);
  const rerate = async (correctedPlanId: string, total: string) => {
    const rerateId = randomUUID();
    await db.transaction((trx) => insertRerate(trx, { id: rerateId, ...target, requestedBy: 'finance', reason: 'price', correctedPlanId, includeLateUsage: false }));
    expect(await rerating.proposeRerate({ rerateId })).toMatchObject({ status: 'proposed', total });
    await rerating.recordRerateDecision({ rerateId, approved: true, by: 'finance', reason: 'ok' });
    return rerating.finalizeRerate({ rerateId });
  };
  const adjustmentId = (await rerate(target.cheaperPlanId, '2.00')).resultInvoiceId!;
  await db('customers').where({ id: target.customerId }).update({ payment_method: 'pm_sandbox_declined' });
  expect(await payments.chargeInvoice({ invoiceId: adjustmentId, attempt: 1 })).toMatchObject({ outcome: 'declined' });
  await payments.markInvoiceUncollectible({ invoiceId: adjustmentId, reason: 'dunning exhausted' });

  const [listed] = await db('plans').where({ code: 'unpaid-undo-uncollectible-adjustment', version: 1 });
  await rerate(listed.id, '-2.00');
  expect(money(await db('refunds').whereIn('invoice_id', [target.invoiceId, adjustmentId]))).toEqual([]);
  expect(money(await db('invoices').where({ credited_invoice_id: adjustmentId }))).toEqual(['2.00 open']);
  // Money arriving later collects nothing more: the adjustment owes nothing after the note.
  await db('customers').where({ id: target.customerId }).update({ payment_method: 'pm_sandbox_ok' });
  expect(await payments.chargeInvoice({ invoiceId: adjustmentId, attempt: 2 })).toMatchObject({ invoiceStatus: 'paid' });
  expect(money(await db('payments').where({ invoice_id: adjustmentId }).orderBy('attempt'))).toEqual(['2.00 failed']);
});

/**
 * The margins report counts every note of a re-rating in the usage period it corrects, not only the first (the one
 * `rerates.result_invoice_id` names).
 *   Feb 1   January 20.00 (February's 10.00 fee, January's 100 × 0.10 = 10.00 usage), paid
 *   re-rated at 0.12: +2.00 adjustment of January, its charge declined
 *   re-rated at 0.08: 8.00 instead of 12.00, −4.00: 2.00 off what the adjustment owes (note 1, of January's period),
 *   2.00 refunded from the period invoice (note 2, on an invoice of February's period)
 *   January revenue 10.00 + 2.00 − 2.00 − 2.00 = 8.00 (100 × 0.08); February 10.00 (the fee)
 * Before: note 2 was never issued (`resultInvoiceId ??= await refundRerateCredit(...)` skipped the call once the
 * adjustment's note was the result: 2.00 never refunded); with it issued, the margins report counted it in February
 * (its invoice's period): January 10.00, February 8.00.
 */
test('undoing an unpaid adjustment past what it owes: the rest is refunded, and the margins report counts both notes in the period corrected', async () => {
  const payments = createPaymentActivities(db, new SandboxGateway(db));
  const target = await unpaidJanuary('margins-two-notes', 'pm_sandbox_ok', '0.12');
  expect(await payments.chargeInvoice({ invoiceId: target.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  const rerating = createReratingActivities(db);
  const rerate = async (correctedPlanId: string, total: string) => {
    const rerateId = randomUUID();
    await db.transaction((trx) => insertRerate(trx, { id: rerateId, ...target, requestedBy: 'finance', reason: 'price', correctedPlanId, includeLateUsage: false }));
    expect(await rerating.proposeRerate({ rerateId })).toMatchObject({ status: 'proposed', total });
    await rerating.recordRerateDecision({ rerateId, approved: true, by: 'finance', reason: 'ok' });
    return rerating.finalizeRerate({ rerateId });
  };
  const adjustmentId = (await rerate(target.cheaperPlanId, '2.00')).resultInvoiceId!;
  await db('customers').where({ id: target.customerId }).update({ payment_method: 'pm_sandbox_declined' });
  expect(await payments.chargeInvoice({ invoiceId: adjustmentId, attempt: 1 })).toMatchObject({ outcome: 'declined' });

  const cheapest = await insertPlan(db, { code: 'unpaid-margins-two-notes', version: 3, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.08') });
  const down = await rerate(cheapest.id, '-4.00');
  const notes = await db('invoices').where({ kind: 'credit_note' }).whereIn('credited_invoice_id', [adjustmentId, target.invoiceId]).orderBy('finalized_at');
  expect(notes.map((note) => [note.credited_invoice_id, Number(note.total).toFixed(2), note.period_start.toISOString()])).toEqual([
    [adjustmentId, '2.00', january.start],
    [target.invoiceId, '2.00', february.start],
  ]);
  expect(down.resultInvoiceId).toBe(notes[0].id);
  expect(money(await db('refunds').whereIn('invoice_id', [adjustmentId, target.invoiceId]))).toEqual(['2.00 pending']);

  const revenue = async (period: { start: string; end: string }) =>
    (await marginReport(db, { from: new Date(period.start), to: new Date(period.end), subscriptionIds: [target.subscriptionId] })).subscriptions.map((row) => row.revenue);
  expect([await revenue(january), await revenue(february)]).toEqual([['8.00'], ['10.00']]);
});
