/**
 * The janitor's activities: find what stalled, repair what is safe through the same idempotent payment path the
 * workflows use (so a repair can never charge twice), and record findings. See docs/operations.md, "Janitor".
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { DEFAULT_RECONCILIATION_MARGINS } from '../contract/janitor';
import type {
  FindingKind,
  OwedReversalCredit,
  RecordFindingsRequest,
  RecordFindingsResult,
  ReconciliationFinding,
  ReconciliationScan,
  ReconciliationScanRequest,
  UncollectedInvoice,
  UnknownPayment,
} from '../contract/janitor';
import { DEFAULT_USAGE_GRACE_PERIOD } from '../domain/plan-terms';
import { addIntervals, isValidInterval, parseInterval } from '../domain/periods';
import { GatewayUnavailableError, PaymentGateway } from '../payments/gateway';
import type { Database } from '../store/database';
import { findInvoice, numberFinalizedInvoices } from '../store/invoices';
import {
  hasPaymentAttempts,
  listIdleOpenInvoices,
  listStalePendingPayments,
  listSubscriptionsPastPeriodEnd,
  listSubscriptionsWithStatus,
  recordFindings,
} from '../store/janitor';
import { findPayment, paymentIdempotencyKey } from '../store/payments';
import { listUnrefundedCreditTotals, UnrefundedCreditTotalRow } from '../store/credit-total-refunds';
import { listCreditNotesOwedBeyondRefunds } from '../store/credit-notes';
import { formatMoney, toDecimal } from '../domain/money';
import { creditReversalsOfSubscription, listOwedReversalCredits, owesReversalCredits } from '../store/reversal-credit-notes';
import { executeRefund, resumeStalePendingRefunds } from '../payments/refunds';
import { rerateWorkflowId } from '../contract/rerating';
import { listReratesNotCarriedOut, type RerateNotCarriedOutRow } from '../store/rerates';
import { createPaymentActivities } from './payments';
import { createRefundActivities } from './refunds';

/** Candidates per kind and run: a run stays short; what is left waits for the next run. */
const SCAN_LIMIT = 200;
/** The status a subscription shows when its workflow stopped on a failure it cannot retry by itself. */
const NEEDS_ATTENTION = 'needs_attention';

const iso = (value: Date | string | null): string => (value === null ? '-' : new Date(value).toISOString());

/**
 * How a re-rating's workflow stands in Temporal: its status name (`RUNNING`, `TERMINATED`, ...), null when there is
 * none (never started, or removed by retention), undefined when it cannot be told now (no client in this context,
 * Temporal unreachable): the re-rating is then not judged in this run.
 */
async function rerateWorkflowStatus(rerateId: string): Promise<string | null | undefined> {
  try {
    return (await Context.current().client.workflow.getHandle(rerateWorkflowId(rerateId)).describe()).status.name;
  } catch (error) {
    return error instanceof WorkflowNotFoundError ? null : undefined;
  }
}

/**
 * Re-ratings not carried out, as findings (subject: the re-rating): failed ones, and those whose row says a step
 * (computing, proposed, approved) while no workflow runs it. Before, ops saw neither: a failed re-rating only through
 * its API answer, a terminated one nowhere (its row said `proposed` or `approved` for good). `complete` is false when
 * the scan was cut at the limit or a workflow could not be looked up (their open findings stay open).
 */
async function rerateFindings(db: Database, requestedBefore: Date): Promise<{ findings: ReconciliationFinding[]; complete: boolean }> {
  const rows = await listReratesNotCarriedOut(db, requestedBefore, SCAN_LIMIT);
  let complete = rows.length < SCAN_LIMIT;
  const findings: ReconciliationFinding[] = [];
  for (const rerate of rows) {
    if (rerate.status === 'failed') {
      findings.push(rerateFinding(rerate, `failed (${rerate.failure_code}): ${rerate.failure_message}`));
      continue;
    }
    const workflow = await rerateWorkflowStatus(rerate.id);
    if (workflow === undefined) complete = false;
    if (workflow === undefined || workflow === 'RUNNING') continue;
    findings.push(rerateFinding(rerate, `says ${rerate.status} but its workflow ${rerateWorkflowId(rerate.id)} ${workflow === null ? 'does not exist' : `ended ${workflow}`}: nothing will carry it out`));
  }
  return { findings, complete };
}

function rerateFinding(rerate: RerateNotCarriedOutRow, what: string): ReconciliationFinding {
  return {
    kind: 'rerate_not_carried_out',
    subjectType: 'rerate',
    subjectId: rerate.id,
    detail: `re-rating ${rerate.id} of invoice ${rerate.invoice_id} (requested ${iso(rerate.created_at)}) ${what}; nothing was credited or billed by it: ask for a new re-rating of the invoice once the cause is fixed`,
    repaired: false,
  };
}

export function createJanitorActivities(db: Database, gateway: PaymentGateway) {
  const { chargeInvoice } = createPaymentActivities(db, gateway);
  const { refundCreditTotal } = createRefundActivities(db, gateway);

  /** One credit total refunded (through the subscription workflow's own activity) or reported. */
  async function payBackCreditTotal(credit: UnrefundedCreditTotalRow): Promise<ReconciliationFinding> {
    const finding = (detail: string, repaired: boolean): ReconciliationFinding => ({
      kind: 'unrefunded_credit',
      subjectType: 'invoice',
      subjectId: credit.id,
      detail: `invoice ${credit.number ?? credit.id} (${credit.total} ${credit.currency}) owed the customer money that no refund paid back: ${detail}`,
      repaired,
    });
    try {
      const result = await refundCreditTotal({ invoiceId: credit.id });
      if (result.status === 'succeeded') return finding('refunded', true);
      if (result.status === 'failed') return finding(`the gateway refused the refund (${result.detail}); credited to the customer's wallet`, true);
      return finding(`${result.detail}; tried again next run`, false);
    } catch (error) {
      if (error instanceof GatewayUnavailableError) return finding('the gateway did not answer; its refund stays pending and is sent again later', false);
      throw error;
    }
  }

  return {
    /**
     * What a reconciliation run should look at, judged at `asOf` (the workflow's clock). Reads only, after one
     * repair: invoices a crash left finalized without a number are numbered first (in order), so they are issued
     * and collected like any other.
     */
    async scanForReconciliation(request: ReconciliationScanRequest): Promise<ReconciliationScan> {
      await numberFinalizedInvoices(db);
      const asOf = new Date(request.asOf);
      const ago = (ms: number): Date => new Date(asOf.getTime() - ms);
      const complete: FindingKind[] = [];
      const flagged: ReconciliationFinding[] = [];

      const pending = await listStalePendingPayments(db, ago(request.margins.pendingPaymentMs), SCAN_LIMIT);
      if (pending.length < SCAN_LIMIT) complete.push('unknown_payment');
      const unknownPayments: UnknownPayment[] = pending.map((row) => ({ paymentId: row.id, invoiceId: row.invoice_id, attempt: row.attempt }));

      const idle = await listIdleOpenInvoices(db, ago(request.margins.uncollectedInvoiceMs), SCAN_LIMIT);
      if (idle.length < SCAN_LIMIT) complete.push('uncollected_invoice');
      const uncollectedInvoices: UncollectedInvoice[] = [];
      for (const invoice of idle) {
        // Never attempted: one attempt is safe (its key is new and unique). Declined before with no dunning in
        // flight: someone decided to stop; charging again is a person's call, so it is only reported.
        if (invoice.attempts === 0) uncollectedInvoices.push({ invoiceId: invoice.id, attempt: 1 });
        else {
          flagged.push({
            kind: 'uncollected_invoice',
            subjectType: 'invoice',
            subjectId: invoice.id,
            detail: `invoice ${invoice.number ?? invoice.id} (${invoice.total} ${invoice.currency}) is open after ${invoice.attempts} declined attempt(s) (last: ${invoice.last_failure_code ?? 'declined'}) and no dunning is in flight; not charged again automatically`,
            repaired: false,
          });
        }
      }

      const overdue = await listSubscriptionsPastPeriodEnd(db, ago(request.margins.periodCloseMs), SCAN_LIMIT);
      if (overdue.length < SCAN_LIMIT) complete.push('period_not_closed');
      for (const subscription of overdue) {
        const grace = graceOf(subscription.settings);
        const dueBy = addIntervals(new Date(subscription.current_period_end), parseInterval(grace), 1);
        if (dueBy.getTime() + request.margins.periodCloseMs > asOf.getTime()) continue;
        flagged.push({
          kind: 'period_not_closed',
          subjectType: 'subscription',
          subjectId: subscription.id,
          detail: `period ${iso(subscription.current_period_start)} to ${iso(subscription.current_period_end)} ended (grace ${grace}) and the next period invoice is missing; ${subscription.usage_closed ? 'its usage is closed' : 'its usage is not closed'}`,
          repaired: false,
        });
      }

      const attention = await listSubscriptionsWithStatus(db, NEEDS_ATTENTION, SCAN_LIMIT);
      if (attention.length < SCAN_LIMIT) complete.push('needs_attention');
      for (const subscription of attention) {
        flagged.push({
          kind: 'needs_attention',
          subjectType: 'subscription',
          subjectId: subscription.id,
          detail: `needs attention since ${iso(subscription.updated_at)}${subscription.reason ? `: ${subscription.reason}` : ''}`,
          repaired: false,
        });
      }

      const owed = await listOwedReversalCredits(db, ago(request.margins.reversalCreditMs ?? DEFAULT_RECONCILIATION_MARGINS.reversalCreditMs!), SCAN_LIMIT);
      if (owed.length < SCAN_LIMIT) complete.push('reversal_credit_owed');
      const owedReversalCredits: OwedReversalCredit[] = owed.map((row) => ({ subscriptionId: row.id, customerId: row.customer_id }));

      // Credit totals nobody paid back (issued before they were refunded, or not refundable then): refunded now, else
      // reported. Inline like the refunds below: the refund is idempotent per credit total, so a subscription workflow
      // paying back the same one meanwhile refunds it once.
      const credits = await listUnrefundedCreditTotals(db, ago(request.margins.uncollectedInvoiceMs), SCAN_LIMIT);
      for (const credit of credits) flagged.push(await payBackCreditTotal(credit));

      // Credit notes worth more than their invoice's charge and payment together: the rest is owed to the customer
      // and no refund can carry it (the payment is used up). Before, nothing reported it; the notes showed settled.
      // Same kind (money owed to the customer that no refund pays back); the subject is the credited invoice.
      const beyond = await listCreditNotesOwedBeyondRefunds(db, ago(request.margins.uncollectedInvoiceMs), SCAN_LIMIT);
      if (credits.length < SCAN_LIMIT && beyond.length < SCAN_LIMIT) complete.push('unrefunded_credit');
      for (const invoice of beyond) {
        const money = (value: string): string => `${formatMoney(toDecimal(value), invoice.currency)} ${invoice.currency}`;
        flagged.push({
          kind: 'unrefunded_credit',
          subjectType: 'invoice',
          subjectId: invoice.id,
          detail: `the credit notes of invoice ${invoice.number ?? invoice.id} (${money(invoice.total)}) credit ${money(invoice.credited)}, more than its charge took off and its payment refunded: owed ${money(invoice.owed)} to the customer that no refund pays back (refund it from another payment or credit the wallet)`,
          repaired: false,
        });
      }

      const rerates = await rerateFindings(db, ago(request.margins.rerateWorkflowMs ?? DEFAULT_RECONCILIATION_MARGINS.rerateWorkflowMs!));
      if (rerates.complete) complete.push('rerate_not_carried_out');
      flagged.push(...rerates.findings);

      // Refunds the gateway left unanswered: a refund request's repeat resumes its own, but those a payment, ingestion
      // or a repair started have no one to repeat them. Each is sent again under its own key (never refunded twice);
      // one the gateway still does not answer stays pending for the next run.
      await resumeStalePendingRefunds(db, gateway, ago(request.margins.pendingPaymentMs), SCAN_LIMIT);

      return { unknownPayments, uncollectedInvoices, owedReversalCredits, flagged, completeKinds: complete };
    },

    /**
     * A payment whose answer was lost: asks the gateway for the charge under the payment's own key and, when there
     * is one, settles the row through chargeInvoice for that same attempt, exactly as its retry would (it looks
     * the charge up first, so nothing is charged). No charge under the key: left pending and reported.
     */
    async settleUnknownPayment(request: UnknownPayment): Promise<ReconciliationFinding | null> {
      const payment = await findPayment(db, request.paymentId);
      if (!payment || payment.status !== 'pending') return null; // settled meanwhile: nothing to report
      const key = paymentIdempotencyKey(payment.invoice_id, payment.attempt);
      const finding = (detail: string, repaired: boolean): ReconciliationFinding => ({
        kind: 'unknown_payment',
        subjectType: 'payment',
        subjectId: payment.id,
        detail: `attempt ${payment.attempt} of invoice ${payment.invoice_id}, pending since ${iso(payment.created_at)}: ${detail}`,
        repaired,
      });
      let charge;
      try {
        charge = await gateway.findCharge(key);
      } catch (error) {
        if (error instanceof GatewayUnavailableError) return finding(`the gateway did not answer the lookup of ${key}; the next run asks again`, false);
        throw error;
      }
      if (!charge) return finding(`the gateway has no charge under ${key}; left pending (no money moved)`, false);
      const settled = await chargeInvoice({ invoiceId: payment.invoice_id, attempt: payment.attempt });
      return finding(
        settled.outcome === 'succeeded'
          ? `the gateway charge ${charge.chargeId} succeeded; payment settled, invoice ${settled.invoiceStatus}`
          : `the gateway charge ${charge.chargeId} was declined (${settled.detail ?? 'declined'}); payment settled as failed`,
        true,
      );
    },

    /**
     * One charge attempt for an open invoice nobody collects, under the invoice's next attempt key, through the
     * idempotent chargeInvoice. Checks again first: a collection that started since the scan wins.
     */
    async collectUncollectedInvoice(request: UncollectedInvoice): Promise<ReconciliationFinding | null> {
      const invoice = await findInvoice(db, request.invoiceId);
      if (!invoice || invoice.status !== 'open') return null;
      if (await hasPaymentAttempts(db, invoice.id)) return null; // someone started collecting it meanwhile
      const finding = (detail: string, repaired: boolean): ReconciliationFinding => ({
        kind: 'uncollected_invoice',
        subjectType: 'invoice',
        subjectId: invoice.id,
        detail: `invoice ${invoice.number ?? invoice.id} (${invoice.total} ${invoice.currency}) was open since ${iso(invoice.finalized_at ?? invoice.created_at)} with no collection: ${detail}`,
        repaired,
      });
      try {
        const result = await chargeInvoice({ invoiceId: invoice.id, attempt: request.attempt });
        return result.outcome === 'succeeded'
          ? finding(`charged (attempt ${request.attempt}${result.detail ? `: ${result.detail}` : ''}), now ${result.invoiceStatus}`, true)
          : finding(`charge attempt ${request.attempt} was declined (${result.detail ?? 'declined'}); not retried automatically`, false);
      } catch (error) {
        if (error instanceof ApplicationFailure && error.type === 'gateway_unavailable') {
          return finding(`charge attempt ${request.attempt} got no answer from the gateway; its payment stays pending and is looked up by key later`, false);
        }
        throw error;
      }
    },

    /**
     * Issues the credit notes an ended subscription owes for reversals (the pass right after ingestion did not
     * run or failed), through the same exactly-once path, and refunds what was paid as that pass does.
     */
    async creditOwedReversals(request: OwedReversalCredit): Promise<ReconciliationFinding | null> {
      const finding = (detail: string, repaired: boolean): ReconciliationFinding => ({
        kind: 'reversal_credit_owed',
        subjectType: 'subscription',
        subjectId: request.subscriptionId,
        detail: `reversed outcomes of the ended subscription were not credited: ${detail}`,
        repaired,
      });
      const issued = await creditReversalsOfSubscription(db, request.subscriptionId);
      if (issued.length === 0) {
        if (!(await owesReversalCredits(db, request.subscriptionId))) return null; // credited meanwhile
        return finding('no invoice has billed the reversed outcomes yet; the next run tries again', false);
      }
      const notes: string[] = [];
      for (const { creditNote, refund } of issued) {
        // A refund the gateway does not confirm stays pending on the credit note, as a refund request's does.
        const settled = refund ? await executeRefund(db, gateway, refund).then((result) => result.refund.status, () => 'pending') : 'not paid, nothing to refund';
        notes.push(`credit note ${creditNote.number ?? creditNote.id} of ${creditNote.total} ${creditNote.currency} (refund: ${settled})`);
      }
      return finding(`issued ${notes.join('; ')}`, true);
    },

    /** Writes the run's findings and resolves the open ones whose condition is gone. */
    async recordReconciliationFindings(request: RecordFindingsRequest): Promise<RecordFindingsResult> {
      return recordFindings(db, new Date(request.asOf), request.findings, request.completeKinds);
    },
  };
}

/** A plan's usage grace window; a malformed one counts as the default rather than stopping the run. */
function graceOf(settings: Record<string, unknown> | null): string {
  const grace = settings?.usageGracePeriod;
  return typeof grace === 'string' && isValidInterval(grace) ? grace : DEFAULT_USAGE_GRACE_PERIOD;
}
