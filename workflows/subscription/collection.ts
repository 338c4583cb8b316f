/**
 * Collection and dunning: an invoice is charged once when it is finalized; a decline leaves it unpaid and the
 * main loop runs dunning, separate charge attempts that are visible in the UI, after the plan's delays.
 */
import { condition } from '@temporalio/workflow';
import type { ChargeInvoiceRequest, ChargeInvoiceResult } from '../../contract/payments';
import type { PeriodInvoiceSummary } from '../../contract/subscription';
import { addIntervals, parseInterval } from '../../domain/periods';
import { local, remote } from '../activity-stubs';
import { withAttention } from './attention';
import { unlessDeterministic } from './deterministic';
import { msUntil, note, patchTaken, SubscriptionRun } from './state';
import {
  ATTEMPTS_AFTER_THE_SCHEDULE_KEPT,
  CREDIT_TOTAL_REFUNDED,
  DECLINED_FOR_GOOD_RETRIED_AFTER_PAYMENT,
  DECLINED_INVOICES_WAIT_THEIR_TURN,
  NEW_PAYMENT_METHOD_AFTER_LAST_RETRY,
  NEW_PAYMENT_METHOD_AFTER_THE_END,
  NEW_PAYMENT_METHOD_AT_THE_FINAL_MARK,
  PAID_KEEPS_PENDING_CANCELLATION,
  STALE_PAYMENT_METHOD_WAKE_FORGOTTEN,
  SUSPENDED_TIME_IS_NOT_BILLED,
} from './patch-ids';
import { changeStatus, moveCalendarBy } from './transitions';
import { showOpsDetails } from './ops-view';
import { afterRunningHandlers } from './turns';

/** Charges an invoice once; a decline leaves it for dunning. Nothing to collect on a zero or credit total. */
export async function collect(
  run: SubscriptionRun,
  invoice: PeriodInvoiceSummary,
  charge: (request: ChargeInvoiceRequest) => Promise<ChargeInvoiceResult> = (request) => remote.chargeInvoice.executeWithOptions({ summary: `charge ${invoice.number}` }, [request]),
): Promise<void> {
  run.lastInvoice = invoice;
  note(run, 'invoice_finalized', `${invoice.number} ${invoice.total} ${invoice.currency}`);
  if (invoice.total.startsWith('-')) {
    note(run, 'credit_issued', `${invoice.number} ${invoice.total}`);
    if (patchTaken(run, CREDIT_TOTAL_REFUNDED)) await payBackCredit(run, invoice);
    return;
  }
  // No dunning waits: this charge uses the card on file now, so a wake-up signaled before it (delivered after a
  // dunning was paid) is stale. Kept, the next dunning's first retry was made at once instead of when announced.
  if (!run.unpaidInvoice) forgetPaymentMethodWake(run);
  const payment = await withAttention(run, 'charge_invoice', () => charge({ invoiceId: invoice.invoiceId, attempt: 1 }));
  run.lastInvoice = { ...invoice, status: payment.invoiceStatus };
  showOpsDetails(run);
  if (payment.outcome === 'succeeded') {
    note(run, 'payment_succeeded', invoice.number);
    return;
  }
  note(run, 'payment_failed', payment.detail ?? undefined);
  // Dunning works on one invoice at a time. Another declined meanwhile (a plan change's proration in the grace window,
  // then the period's own invoice) waits its turn: put in its place, the first was never charged again.
  if (run.unpaidInvoice && run.unpaidInvoice.invoiceId !== invoice.invoiceId && patchTaken(run, DECLINED_INVOICES_WAIT_THEIR_TURN)) {
    run.awaitingDunning.push({ invoice: run.lastInvoice, retryable: payment.retryable });
    return;
  }
  startDunning(run, run.lastInvoice, payment.retryable);
  await changeStatus(run, 'past_due', payment.detail ?? 'payment failed');
}

/**
 * A credit total is the customer's money: refunded to the payment that paid for the time it credits (a refusal
 * becomes wallet credit). None to refund against (nothing paid yet: a trial, an invoice still in dunning) leaves the
 * invoice open and visible, noted for ops.
 */
async function payBackCredit(run: SubscriptionRun, invoice: PeriodInvoiceSummary): Promise<void> {
  const refund = await withAttention(run, 'refund_credit', () =>
    remote.refundCreditTotal.executeWithOptions({ summary: `refund ${invoice.number}` }, [{ invoiceId: invoice.invoiceId }]),
  );
  if (refund.status === 'succeeded') note(run, 'credit_refunded', `${invoice.number} ${invoice.total}`);
  else if (refund.status === 'failed') note(run, 'credit_to_wallet', `${invoice.number}: refund refused (${refund.detail}), credited to the wallet`);
  else note(run, 'credit_not_refunded', refund.detail ?? undefined);
}

/** Drops a new payment method's wake-up that no dunning waits for. Asked only when set: no other history gets the marker. */
function forgetPaymentMethodWake(run: SubscriptionRun): void {
  if (run.paymentMethodUpdated && patchTaken(run, STALE_PAYMENT_METHOD_WAKE_FORGOTTEN)) run.paymentMethodUpdated = false;
}

/** The invoice dunning now works on, from its first attempt (the main loop runs it). */
function startDunning(run: SubscriptionRun, invoice: PeriodInvoiceSummary, retryable: boolean): void {
  run.unpaidInvoice = invoice;
  run.unpaidRetryable = retryable;
  run.dunning = { invoiceId: invoice.invoiceId, attempt: 1, nextAttemptAt: null };
}

/**
 * One dunning attempt: waits until `retryAt` (or, with none, indefinitely) unless a new payment method arrives
 * first, then charges again. Null when a cancellation came first.
 */
async function retryCharge(
  run: SubscriptionRun,
  invoice: PeriodInvoiceSummary,
  attempt: number,
  retryAt: Date | null,
  noteDeclineDetail: boolean,
): Promise<ChargeInvoiceResult | null> {
  // After the end the cancellation has been carried out: only a new payment method brings the attempt forward.
  const canceling = (): boolean => run.cancelNow !== null && !run.collectingAfterTheEnd;
  const retryNow = (): boolean => run.paymentMethodUpdated || canceling();
  if (retryAt) await condition(retryNow, msUntil(retryAt), { summary: `payment retry ${attempt} for ${invoice.number}` });
  else await condition(retryNow);
  await afterRunningHandlers();
  if (canceling()) return null;
  run.paymentMethodUpdated = false;
  // Idempotent per (invoice, attempt): a retry after ops fixed the data charges this attempt at most once.
  const payment = await withAttention(run, 'charge_invoice', () =>
    remote.chargeInvoice.executeWithOptions({ summary: `charge ${invoice.number}, attempt ${attempt}` }, [{ invoiceId: invoice.invoiceId, attempt }]),
  );
  const detail = noteDeclineDetail && payment.detail ? `: ${payment.detail}` : '';
  note(run, payment.outcome === 'succeeded' ? 'dunning_paid' : 'dunning_declined', `attempt ${attempt}${detail}`);
  return payment;
}

/**
 * Dunning: separate, visible charge attempts after the plan's delays; a new payment method retries at once.
 * Returns 'paid', or 'given_up' when the plan's final action ends the subscription (or it was canceled).
 */
export async function runDunning(run: SubscriptionRun): Promise<'paid' | 'given_up'> {
  const invoice = run.unpaidInvoice!;
  let attempt = run.dunning?.attempt ?? 1;
  let retryable = run.unpaidRetryable;
  for (const delay of run.plan.dunning.retryAfter) {
    if (!retryable) break; // non-retryable declines skip straight to the plan's final step
    const payment = await scheduledRetry(run, invoice, attempt, delay);
    attempt += 1;
    if (!payment) return 'given_up';
    if (payment.outcome === 'succeeded') return settleDunning(run, payment.invoiceStatus);
    retryable = payment.retryable;
  }
  const withNewMethod = await attemptWithNewPaymentMethod(run, invoice, attempt, NEW_PAYMENT_METHOD_AFTER_LAST_RETRY);
  if (withNewMethod) {
    attempt += 1;
    if (withNewMethod === 'canceled') return keepAttemptsAfterTheSchedule(run, invoice, attempt - 1);
    if (withNewMethod.outcome === 'succeeded') return settleDunning(run, withNewMethod.invoiceStatus);
  }
  if (run.plan.dunning.finalAction === 'cancel') {
    const final = await markUncollectibleUnlessNewPaymentMethod(run, invoice, attempt, 'dunning exhausted');
    attempt = final.lastAttempt;
    if (final.payment === 'canceled') return keepAttemptsAfterTheSchedule(run, invoice, attempt);
    if (final.payment) return settleDunning(run, final.payment.invoiceStatus);
    // The subscription ends: the invoices waiting their turn are given up with it.
    for (const unpaid of run.awaitingDunning.map((waiting) => waiting.invoice)) {
      await withAttention(run, 'mark_invoice_uncollectible', () => local.markInvoiceUncollectible({ invoiceId: unpaid.invoiceId, reason: 'dunning exhausted' }));
    }
    run.awaitingDunning = [];
    run.lastInvoice = { ...invoice, status: 'uncollectible' };
    return keepAttemptsAfterTheSchedule(run, invoice, attempt);
  }
  // Suspend until paid: no new periods, usage refused, and every new payment method gets one more attempt.
  const suspendedAt = Date.now();
  await changeStatus(run, 'suspended', 'dunning exhausted');
  run.dunning = { invoiceId: invoice.invoiceId, attempt, nextAttemptAt: null };
  for (;;) {
    attempt += 1;
    const payment = await retryCharge(run, invoice, attempt, null, false);
    if (!payment) return keepAttemptsAfterTheSchedule(run, invoice, attempt - 1);
    if (payment.outcome === 'succeeded') {
      // Suspended, the subscription gave no service: as after a pause, that time is not billed. Before, paying
      // opened and billed every period the suspension had spanned, all at once.
      if (patchTaken(run, SUSPENDED_TIME_IS_NOT_BILLED)) moveCalendarBy(run, Date.now() - suspendedAt);
      return settleDunning(run, payment.invoiceStatus);
    }
  }
}

/**
 * Dunning ends past its schedule. After a cancellation now (the customer's, not dunning's final step) the invoice is
 * dunned after the end from `run.dunning`, which still held the schedule's last step: that dunning "retried" an
 * attempt already made, read its recorded decline (no charge) and spent a new card's wake-up on it (the invoice then
 * marked uncollectible, that card never tried), or announced it again for 7 days later (shown to ops as the next
 * attempt of an uncollectible invoice). So it goes on from the last attempt made, with none announced.
 */
function keepAttemptsAfterTheSchedule(run: SubscriptionRun, invoice: PeriodInvoiceSummary, lastAttempt: number): 'given_up' {
  if (run.cancelNow && patchTaken(run, ATTEMPTS_AFTER_THE_SCHEDULE_KEPT)) run.dunning = { invoiceId: invoice.invoiceId, attempt: lastAttempt, nextAttemptAt: null };
  return 'given_up';
}

/**
 * The schedule is spent, but a new payment method arrived while its last attempt was at the gateway with the old one
 * (that decline is kept retryable for it: activities/payments.ts): one more attempt, at once, with the new method.
 * Before, the plan's final step followed the decline: the subscription was canceled and the invoice marked
 * uncollectible with a card that could pay on file, answered 200. Null when no such method arrived. `patchId`: the
 * live dunning's patch, or the one of a dunning after the end (each asked only where such a method arrived).
 */
async function attemptWithNewPaymentMethod(
  run: SubscriptionRun,
  invoice: PeriodInvoiceSummary,
  lastAttempt: number,
  patchId: string,
): Promise<ChargeInvoiceResult | 'canceled' | null> {
  if (!run.paymentMethodUpdated || !patchTaken(run, patchId)) return null;
  return (await retryCharge(run, invoice, lastAttempt + 1, null, true)) ?? 'canceled';
}

/**
 * Dunning's final mark of the invoice it gave up on. A payment method replaced while the last attempt was at the
 * gateway with the old one may have been committed before its wake-up reached this workflow (the API writes, then
 * signals): the decline was acted on, the invoice marked uncollectible and the subscription canceled, the new card on
 * file never tried (after the end the API does not even signal once no attempt is announced or in flight). So the
 * mark leaves it open when the card on file is not the one the last attempt used, and that card is tried, at once.
 * `payment`: null when marked, the extra attempt's success, or 'canceled' when a cancellation came first.
 */
async function markUncollectibleUnlessNewPaymentMethod(
  run: SubscriptionRun,
  invoice: PeriodInvoiceSummary,
  lastAttempt: number,
  reason: string,
): Promise<{ lastAttempt: number; payment: ChargeInvoiceResult | 'canceled' | null }> {
  for (;;) {
    const marked = await withAttention(run, 'mark_invoice_uncollectible', () =>
      local.markInvoiceUncollectible({ invoiceId: invoice.invoiceId, reason, unlessNewPaymentMethod: true }),
    );
    if (!marked.newPaymentMethod || !patchTaken(run, NEW_PAYMENT_METHOD_AT_THE_FINAL_MARK)) return { lastAttempt, payment: null };
    run.paymentMethodUpdated = true; // the wake-up still on its way
    const payment = await retryCharge(run, invoice, lastAttempt + 1, null, true);
    if (!payment) return { lastAttempt, payment: 'canceled' };
    lastAttempt += 1;
    if (payment.outcome === 'succeeded') return { lastAttempt, payment };
  }
}

/** The dunning retry after `delay`, announced to the customer first; null when a cancellation came before it. */
async function scheduledRetry(run: SubscriptionRun, invoice: PeriodInvoiceSummary, attempt: number, delay: string): Promise<ChargeInvoiceResult | null> {
  const nextAttemptAt = addIntervals(new Date(), parseInterval(delay), 1);
  run.dunning = { invoiceId: invoice.invoiceId, attempt, nextAttemptAt: nextAttemptAt.toISOString() };
  // The notice is for the customer: one that cannot be stored is noted, and dunning goes on.
  await unlessDeterministic(run, 'notification', () =>
    local.notifyCustomer({
      subscriptionId: run.input.subscriptionId,
      eventType: 'dunning.retry_scheduled',
      dedupeKey: `dunning:${invoice.invoiceId}:${attempt + 1}`,
      payload: { invoiceId: invoice.invoiceId, attempt: attempt + 1, at: nextAttemptAt.toISOString() },
    }),
  );
  return retryCharge(run, invoice, attempt + 1, nextAttemptAt, true);
}

/**
 * The end of a subscription does not forgive what it billed. The invoices it left unpaid (a declined closing invoice,
 * or one in dunning when the customer canceled now) are dunned one at a time after the cancellation, each for what is
 * left of the plan's schedule (a suspended one has none left); what is not paid by then is marked uncollectible. The
 * subscription is canceled already, and its status does not change again. Before, they stayed open for good: the
 * workflow ended without another attempt.
 */
export async function collectAfterTheEnd(run: SubscriptionRun, dunningGaveUp: boolean): Promise<void> {
  run.collectingAfterTheEnd = true; // a cancellation now, carried out already, no longer stops a retry
  // A dunning that gave up marked its own invoice uncollectible already; only those left waiting are dunned.
  let givenUp = dunningGaveUp;
  while (run.unpaidInvoice) {
    const invoice = run.unpaidInvoice;
    const dunned = givenUp ? null : await retriedUntilPaid(run, invoice);
    let paid = dunned?.paid === true;
    if (dunned && !paid) {
      // No cancellation stops an attempt now: the extra one's result is a charge's.
      const final = await markUncollectibleUnlessNewPaymentMethod(run, invoice, dunned.lastAttempt, 'dunning exhausted after the subscription ended');
      paid = final.payment !== null && final.payment !== 'canceled';
      run.lastInvoice = { ...invoice, status: paid ? 'paid' : 'uncollectible' };
    }
    givenUp = false;
    const next = run.awaitingDunning.shift();
    if (next) startDunning(run, next.invoice, paid ? retryableInTurn(run, next) : next.retryable);
    else {
      run.unpaidInvoice = null;
      run.dunning = null;
    }
  }
}

/** What is left of the plan's retry schedule for the invoice in dunning; paid once it is, and the last attempt made. */
async function retriedUntilPaid(run: SubscriptionRun, invoice: PeriodInvoiceSummary): Promise<{ paid: boolean; lastAttempt: number }> {
  let attempt = run.dunning?.attempt ?? 1;
  let retryable = run.unpaidRetryable;
  // An attempt announced before a cancellation now interrupted its wait keeps the time the customer was told.
  let announced = run.dunning?.nextAttemptAt ? new Date(run.dunning.nextAttemptAt) : null;
  for (const delay of run.plan.dunning.retryAfter.slice(attempt - 1)) {
    if (!retryable) break;
    // No cancellation stops a retry now (the non-null assertions).
    const payment =
      announced && announced.getTime() > Date.now() ? (await retryCharge(run, invoice, attempt + 1, announced, true))! : (await scheduledRetry(run, invoice, attempt, delay))!;
    announced = null;
    attempt += 1;
    if (payment.outcome === 'succeeded') {
      run.lastInvoice = { ...invoice, status: payment.invoiceStatus };
      return { paid: true, lastAttempt: attempt };
    }
    retryable = payment.retryable;
  }
  // A new payment method that arrived while the last attempt was at the gateway with the old one: tried once, at once
  // (no cancellation stops it now). Before, the invoice was marked uncollectible with that card on file, never tried.
  const withNewMethod = await attemptWithNewPaymentMethod(run, invoice, attempt, NEW_PAYMENT_METHOD_AFTER_THE_END);
  if (withNewMethod === null || withNewMethod === 'canceled') return { paid: false, lastAttempt: attempt };
  if (withNewMethod.outcome !== 'succeeded') return { paid: false, lastAttempt: attempt + 1 };
  run.lastInvoice = { ...invoice, status: withNewMethod.invoiceStatus };
  return { paid: true, lastAttempt: attempt + 1 };
}

/**
 * Whether the invoice whose turn comes after the one in dunning was paid is worth retrying. A decline for good (an
 * expired card) said that card will never pay; a payment was just made, most often with a new card posted meanwhile
 * (its wake-up spent on the invoice it paid). Taken as final, that invoice went to the plan's final step at once:
 * suspended again, or marked uncollectible after the end, with the card that had just paid on file, never tried.
 */
function retryableInTurn(run: SubscriptionRun, waiting: { retryable: boolean }): boolean {
  return waiting.retryable || patchTaken(run, DECLINED_FOR_GOOD_RETRIED_AFTER_PAYMENT);
}

async function settleDunning(run: SubscriptionRun, invoiceStatus: string): Promise<'paid'> {
  run.lastInvoice = { ...run.unpaidInvoice!, status: invoiceStatus };
  const next = run.awaitingDunning.shift();
  if (next) {
    // The next declined invoice's turn: its own dunning from its first attempt.
    startDunning(run, next.invoice, retryableInTurn(run, next));
    await changeStatus(run, 'past_due', `${next.invoice.number} unpaid`);
    return 'paid';
  }
  run.unpaidInvoice = null;
  run.dunning = null;
  // A new payment method signaled while the paying attempt was in flight wakes nothing now: kept, it made the next
  // dunning's first retry at once, right after the notice announcing it for later (one retry lost from the schedule).
  forgetPaymentMethodWake(run);
  await changeStatus(run, statusWhenPaid(run), 'paid');
  return 'paid';
}

/**
 * Paid up: active again, unless a cancellation at the period's end was accepted meanwhile. Shown active, that
 * subscription took a pause (whose period never ends, so the cancellation never took effect) or a plan change.
 */
function statusWhenPaid(run: SubscriptionRun): 'active' | 'pending_cancellation' {
  return run.pendingCancellation && patchTaken(run, PAID_KEEPS_PENDING_CANCELLATION) ? 'pending_cancellation' : 'active';
}
