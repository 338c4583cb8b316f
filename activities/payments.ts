import { ApplicationFailure } from '@temporalio/activity';
import type Decimal from 'decimal.js';
import type {
  ChargeInvoiceRequest,
  ChargeInvoiceResult,
  MarkInvoiceUncollectibleRequest,
  MarkInvoiceUncollectibleResult,
} from '../contract/payments';
import { formatMoney, isSupportedCurrency, minorUnitExponent, toDecimal } from '../domain/money';
import { ChargeResult, GatewayUnavailableError, PaymentGateway } from '../payments/gateway';
import { executeRefund } from '../payments/refunds';
import type { Database } from '../store/database';
import { amountOwedAfterCreditNotes, refundCreditNotesOfPaidInvoice, type RefundRow } from '../store/credit-notes';
import { settleCreditTotalsOfPaidInvoice } from '../store/credit-total-refunds';
import { findInvoice, findIssuedInvoice, InvoiceRow, lockInvoice } from '../store/invoices';
import { enqueueOutboxEvent, writeAudit } from '../store/outbox';
import {
  currentPaymentMethodOf,
  findPayment,
  findPaymentAttempt,
  findSucceededPayment,
  insertFailedPayment,
  insertPendingPayment,
  listPendingPayments,
  markInvoicePaid,
  markInvoiceUncollectible,
  paymentIdempotencyKey,
  paymentMethodReplacedSinceLastAttempt,
  PaymentRow,
  settlePayment,
} from '../store/payments';
import { inTransaction, type Transaction } from '../store/transactions';

export { paymentIdempotencyKey };

export type { ChargeInvoiceRequest, ChargeInvoiceResult, MarkInvoiceUncollectibleRequest, MarkInvoiceUncollectibleResult };

const CHARGEABLE_STATUSES = new Set(['open', 'uncollectible']);
/** Rounds of "read, then claim" before giving up to a Temporal retry; contention needs a concurrent duplicate. */
const MAX_CLAIM_ROUNDS = 5;

function resultOf(payment: PaymentRow, invoiceStatus: string): ChargeInvoiceResult {
  return payment.status === 'succeeded'
    ? { outcome: 'succeeded', invoiceStatus: 'paid', detail: null, retryable: false, paymentId: payment.id, settledAttempt: payment.attempt }
    : {
        outcome: 'declined',
        invoiceStatus,
        detail: payment.failure_code,
        retryable: payment.retryable ?? true,
        paymentId: payment.id,
        settledAttempt: payment.attempt,
      };
}

export function createPaymentActivities(db: Database, gateway: PaymentGateway) {
  /**
   * Takes a pending payment to its outcome, under the payment's own key. `lookUpFirst` when an earlier try may
   * have reached the gateway (the row existed before this execution): a lost response is found, not repeated.
   */
  async function completePayment(invoice: InvoiceRow, payment: PaymentRow, lookUpFirst: boolean): Promise<ChargeInvoiceResult> {
    const amount = toDecimal(payment.amount);
    let charge: ChargeResult | null = lookUpFirst ? await gateway.findCharge(payment.idempotency_key) : null;
    if (!charge) {
      try {
        charge = await gateway.charge({
          idempotencyKey: payment.idempotency_key,
          paymentMethod: payment.payment_method ?? '',
          amount,
          currency: payment.currency,
          reference: invoice.id,
        });
      } catch (error) {
        if (error instanceof GatewayUnavailableError) {
          // Outcome unknown. The payment stays pending; the retry of this activity looks the charge up by key.
          throw ApplicationFailure.retryable(`charge ${payment.idempotency_key}: ${error.message}`, 'gateway_unavailable');
        }
        throw error;
      }
    }
    if (!charge.amount.equals(amount) || charge.currency !== payment.currency) {
      throw ApplicationFailure.nonRetryable(
        `gateway charge ${charge.chargeId} is ${charge.amount.toString()} ${charge.currency}, payment ${payment.id} is ${payment.amount} ${payment.currency}`,
        'gateway_charge_mismatch',
      );
    }
    const decided = charge;

    let creditNoteRefunds: RefundRow[] = [];
    const result = await inTransaction(db, async (trx) => {
      // The invoice's row lock first, as every write deciding a collection takes it (lockChargeable): taken only by
      // markInvoicePaid below, after this payment's row, it deadlocked with a duplicate writing its row under that lock.
      await lockInvoice(trx, invoice.id);
      // A decline retrying cannot fix (an expired card) is worth retrying after all when the customer replaced the
      // payment method while this charge was at the gateway: the retry uses the new one. Taken as final, the plan's
      // last dunning step (cancel, suspend) came at once, though the new card was on file; its wake-up signal could
      // only arrive after the workflow had acted on the decline.
      const retryable = decided.outcome === 'declined' && (decided.retryable || (await currentPaymentMethodOf(trx, invoice.customer_id)) !== payment.payment_method);
      const settled = await settlePayment(
        trx,
        payment.id,
        decided.outcome === 'succeeded'
          ? { status: 'succeeded', chargeId: decided.chargeId }
          : { status: 'failed', chargeId: decided.chargeId, failureCode: decided.declineCode, retryable },
      );
      if (!settled) {
        // A concurrent execution settled this payment first; it saw the same charge (same key).
        const current = (await findPayment(trx, payment.id))!;
        return resultOf(current, (await findInvoice(trx, invoice.id))!.status);
      }
      const common = {
        invoiceId: invoice.id,
        invoiceNumber: invoice.number,
        customerId: invoice.customer_id,
        paymentId: settled.id,
        attempt: settled.attempt,
        amount: formatMoney(toDecimal(settled.amount), settled.currency),
        currency: settled.currency,
      };
      if (decided.outcome === 'succeeded') {
        const paid = await markInvoicePaid(trx, invoice.id);
        if (paid) {
          await enqueueOutboxEvent(trx, {
            eventType: 'payment.succeeded',
            aggregateType: 'invoice',
            aggregateId: invoice.id,
            dedupeKey: `payment.succeeded:${invoice.id}`,
            payload: { ...common, chargeId: decided.chargeId },
          });
          // Credit notes issued while it was unpaid (outcomes reversed after the subscription ended): the charge
          // collected the whole total, so they are refunded now. The row lock markInvoicePaid took orders this with
          // the issuing of a note: a note issued after it sees the invoice paid and is refunded there.
          // Credit totals of its time applied to it while unpaid: settled as taken off, or refunded where the charge
          // was already at the gateway for more (store/credit-total-refunds.ts). Before the notes: they come first.
          creditNoteRefunds = await settleCreditTotalsOfPaidInvoice(trx, paid);
          if (paid.has_credit_notes) creditNoteRefunds.push(...(await refundCreditNotesOfPaidInvoice(trx, paid)));
        }
        return resultOf(settled, 'paid');
      }
      await enqueueOutboxEvent(trx, {
        eventType: 'payment.failed',
        aggregateType: 'invoice',
        aggregateId: invoice.id,
        dedupeKey: `payment.failed:${settled.id}`,
        payload: { ...common, declineCode: decided.declineCode, retryable },
      });
      return resultOf(settled, invoice.status);
    });
    // A refund the gateway does not confirm now stays pending on its credit note, as a refund request's does.
    for (const refund of creditNoteRefunds) await executeRefund(db, gateway, refund);
    return result;
  }

  /**
   * The invoice, locked, when it is still chargeable for `amount` (status open or uncollectible, and owing that much
   * after its credit notes and credit totals); null when another collection or a credit changed it since it was read.
   * Every write that decides a collection (a new payment row, a settlement without a charge) happens under this lock:
   * before, a collection that had read the invoice before a credit note credited it in full wrote its pending row and
   * charged the whole total after a racing one (the janitor's repair beside the workflow) had settled it without a
   * charge, and its success found the invoice paid, so nothing refunded the customer.
   */
  async function lockChargeable(trx: Transaction, invoice: InvoiceRow, amount: Decimal): Promise<InvoiceRow | null> {
    const locked = await lockInvoice(trx, invoice.id);
    if (!locked || !CHARGEABLE_STATUSES.has(locked.status)) return null;
    const total = toDecimal(locked.total);
    const owed = total.isNegative() ? total : await amountOwedAfterCreditNotes(trx, locked);
    return owed.equals(amount) ? locked : null;
  }

  return {
    /**
     * Collects an open invoice, at most once, whatever crashes, retries or duplicate requests happen:
     * - the pending payment row is written before the gateway call and the gateway key comes from it
     *   (`payment:<invoice id>:<attempt>`), so a retry after a crash or timeout reuses the same key;
     * - a payment left pending by an earlier try (lost response, crash) is looked up by key (findCharge)
     *   before anything is charged again, and charged under its own key only if the gateway never saw it;
     * - at most one attempt per invoice is pending (a unique index), so attempt n+1 cannot start before
     *   attempt n is decided, and an attempt that turns out to have paid ends the matter.
     * Unknown outcomes throw a retryable `gateway_unavailable` failure: keep chargeInvoice's retries uncapped.
     * Declines are results, not failures: the workflow's dunning decides what happens next.
     */
    async chargeInvoice(request: ChargeInvoiceRequest): Promise<ChargeInvoiceResult> {
      if (!Number.isInteger(request.attempt) || request.attempt < 1) {
        throw ApplicationFailure.nonRetryable(`attempt must be a positive integer, got ${request.attempt}`, 'invalid_payment_attempt');
      }
      for (let round = 0; round < MAX_CLAIM_ROUNDS; round += 1) {
        // Issued first: an invoice finalized but still waiting for its number is numbered, never charged without.
        const invoice = await findIssuedInvoice(db, request.invoiceId);
        if (!invoice) throw ApplicationFailure.nonRetryable(`invoice ${request.invoiceId} not found`, 'invoice_not_found');
        if (invoice.kind === 'credit_note') {
          throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} is a credit note`, 'invoice_not_chargeable');
        }
        if (invoice.status === 'paid') {
          const payment = await findSucceededPayment(db, invoice.id);
          return payment ? resultOf(payment, 'paid') : { outcome: 'succeeded', invoiceStatus: 'paid', detail: null, retryable: false, paymentId: null, settledAttempt: null };
        }
        if (!CHARGEABLE_STATUSES.has(invoice.status)) {
          throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} is ${invoice.status}`, 'invoice_not_open');
        }

        // Finish whatever is in flight first: ours from an earlier try, or an earlier attempt whose answer was lost.
        let rereadInvoice = false;
        for (const pending of await listPendingPayments(db, invoice.id)) {
          const result = await completePayment(invoice, pending, true);
          if (result.outcome === 'succeeded' || pending.attempt === request.attempt) return result;
          rereadInvoice = true;
        }
        if (rereadInvoice) continue;

        const existing = await findPaymentAttempt(db, invoice.id, request.attempt);
        if (existing) {
          if (existing.status !== 'pending') return resultOf(existing, invoice.status);
          continue; // became pending concurrently: finish it in the next round
        }

        // What the invoice still owes: its total less the credit notes issued against it while unpaid (outcomes
        // reversed after the subscription ended). Before, the whole total was charged (each dunning retry too) and
        // the notes refunded afterwards; an invoice credited in full charged the card for nothing owed. A note issued
        // after this read is refunded once the charge pays (refundCreditNotesOfPaidInvoice: total − payment tells
        // which notes the charge took off).
        const total = toDecimal(invoice.total);
        const amount = total.isNegative() ? total : await amountOwedAfterCreditNotes(db, invoice);
        if (amount.isZero()) {
          // Nothing to collect: a zero invoice, or one credited in full, is settled without a gateway call.
          let creditNoteRefunds: RefundRow[] = [];
          const settledWithoutCharge = await inTransaction(db, async (trx) => {
            // Under the invoice's lock: a payment written since the read is at the gateway (or about to be) for what
            // the invoice owed then; it settles the invoice (and refunds the notes) itself. Read again instead.
            if (!(await lockChargeable(trx, invoice, amount)) || (await listPendingPayments(trx, invoice.id)).length > 0) return false;
            const paid = await markInvoicePaid(trx, invoice.id);
            if (paid) {
              // Its notes are settled as taken off (a note issued meanwhile beyond the total is refunded if it can be).
              creditNoteRefunds = await settleCreditTotalsOfPaidInvoice(trx, paid);
              if (paid.has_credit_notes) creditNoteRefunds.push(...(await refundCreditNotesOfPaidInvoice(trx, paid)));
              await enqueueOutboxEvent(trx, {
                eventType: 'payment.succeeded',
                aggregateType: 'invoice',
                aggregateId: invoice.id,
                dedupeKey: `payment.succeeded:${invoice.id}`,
                payload: { invoiceId: invoice.id, invoiceNumber: invoice.number, customerId: invoice.customer_id, paymentId: null, amount: formatMoney(amount, invoice.currency), currency: invoice.currency },
              });
            }
            return true;
          });
          if (!settledWithoutCharge) continue;
          for (const refund of creditNoteRefunds) await executeRefund(db, gateway, refund);
          return { outcome: 'succeeded', invoiceStatus: 'paid', detail: 'nothing to collect', retryable: false, paymentId: null, settledAttempt: null };
        }

        // The gateway's door: a credit total (negative) is the customer's money, never a charge, and an amount finer
        // than the currency's minor unit cannot be charged as billed. Whoever asks (the workflows skip credit totals;
        // a repair or a future caller may not), nothing is written and the gateway hears nothing.
        if (amount.isNegative() || !isSupportedCurrency(invoice.currency) || amount.decimalPlaces() > minorUnitExponent(invoice.currency)) {
          throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} has total ${invoice.total} ${invoice.currency}: not a chargeable amount`, 'invoice_not_chargeable');
        }

        // A new attempt uses the customer's payment method as it is now (dunning waits for a new one).
        const paymentMethod = await currentPaymentMethodOf(db, invoice.customer_id);
        const newPayment = { invoiceId: invoice.id, attempt: request.attempt, amount: amount.toFixed(), currency: invoice.currency, paymentMethod };

        if (!paymentMethod) {
          const failed = await inTransaction(db, async (trx) => {
            if (!(await lockChargeable(trx, invoice, amount))) return null; // paid or credited meanwhile: read again
            const row = await insertFailedPayment(trx, {
              ...newPayment,
              failureCode: 'payment_method_missing',
              failureMessage: 'the customer has no payment method on file',
              retryable: true,
            });
            if (row) {
              await enqueueOutboxEvent(trx, {
                eventType: 'payment.failed',
                aggregateType: 'invoice',
                aggregateId: invoice.id,
                dedupeKey: `payment.failed:${row.id}`,
                payload: {
                  invoiceId: invoice.id,
                  invoiceNumber: invoice.number,
                  customerId: invoice.customer_id,
                  paymentId: row.id,
                  attempt: row.attempt,
                  amount: formatMoney(toDecimal(row.amount), row.currency),
                  currency: row.currency,
                  declineCode: 'payment_method_missing',
                  retryable: true,
                },
              });
            }
            return row;
          });
          if (!failed) continue;
          return resultOf(failed, invoice.status);
        }

        // Intent before side effect: the pending row exists before the gateway hears of this key.
        // Written under the invoice's lock, still chargeable for this amount (lockChargeable): never for an invoice
        // settled or credited since the read above.
        const created = await inTransaction(db, async (trx) => ((await lockChargeable(trx, invoice, amount)) ? insertPendingPayment(trx, newPayment) : null));
        if (!created) continue; // a concurrent execution claimed it (or another attempt is pending): read again
        return completePayment(invoice, created, false);
      }
      throw ApplicationFailure.retryable(`payments of invoice ${request.invoiceId} changed concurrently; retrying`, 'payment_contention');
    },

    /**
     * The end of dunning: an open invoice that could not be collected becomes uncollectible, with an audit
     * record and an `invoice.uncollectible` event. Idempotent; leaves a paid invoice alone. A later successful
     * chargeInvoice still pays an uncollectible invoice (money that arrives is never refused).
     */
    async markInvoiceUncollectible(request: MarkInvoiceUncollectibleRequest): Promise<MarkInvoiceUncollectibleResult> {
      return inTransaction(db, async (trx) => {
        // A card replaced while the last attempt was at the gateway: its wake-up may reach the workflow only after this
        // mark (then it wakes nothing), so the mark itself tells the workflow to try that card first.
        if (request.unlessNewPaymentMethod && (await paymentMethodReplacedSinceLastAttempt(trx, request.invoiceId))) {
          return { invoiceStatus: 'open', changed: false, newPaymentMethod: true };
        }
        const marked = await markInvoiceUncollectible(trx, request.invoiceId);
        if (!marked) {
          const current = await findInvoice(trx, request.invoiceId);
          if (!current) throw ApplicationFailure.nonRetryable(`invoice ${request.invoiceId} not found`, 'invoice_not_found');
          return { invoiceStatus: current.status, changed: false };
        }
        await writeAudit(trx, {
          actor: 'workflow',
          action: 'invoice.marked_uncollectible',
          subjectType: 'invoice',
          subjectId: marked.id,
          reason: request.reason,
        });
        await enqueueOutboxEvent(trx, {
          eventType: 'invoice.uncollectible',
          aggregateType: 'invoice',
          aggregateId: marked.id,
          dedupeKey: `invoice.uncollectible:${marked.id}`,
          payload: {
            invoiceId: marked.id,
            invoiceNumber: marked.number,
            customerId: marked.customer_id,
            subscriptionId: marked.subscription_id,
            amount: formatMoney(toDecimal(marked.total), marked.currency),
            currency: marked.currency,
            reason: request.reason,
          },
        });
        return { invoiceStatus: marked.status, changed: true };
      });
    },
  };
}
