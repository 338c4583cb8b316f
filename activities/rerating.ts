/**
 * Manual re-rating: recompute a closed usage period with the same rating function, propose the difference to
 * what was invoiced, and after a finance approval carry it out as an adjustment invoice or a credit note. The
 * original invoice is never edited; every step is in the audit log.
 */
import { stretchAllowances } from '../domain/allowances';
import { closureAllowanceShare } from '../store/plan-changes';
import { ApplicationFailure } from '@temporalio/activity';
import type { RerateFailureRecord, RerateState as RerateSummary } from '../contract/rerating';
import type { PeriodBounds } from '../domain/invoice';
import { usageCharges } from '../domain/plan-terms';
import { rateDimensionalUsage } from '../domain/dimensions';
import type { Charge } from '../domain/rating';
import { creditAmountOf, InvoicedAmount, invoicedAmounts, RERATEABLE_INVOICE_KINDS, rerateDifference, type RerateDifference } from '../domain/rerating';
import { findPlan, type PlanRow } from '../store/catalog';
import type { Database } from '../store/database';
import { finalizeInvoice, findFirstUsageLine, findInvoice, insertAdjustmentDraft, listInvoiceLinesOfPeriod, lockInvoice, numberFinalizedInvoices } from '../store/invoices';
import { writeAudit } from '../store/outbox';
import {
  lastFinalizedRerateOfClosure,
  listFinalizedRerates,
  lockRerate as lockRerateRow,
  markRerateFailed,
  markRerateFinalized,
  recordRerateDecision,
  recordRerateProposal,
  laterSeatInvoices,
  type LaterInvoiceChanged,
  type RerateProposal,
  type RerateRow,
  type RerateStatus,
} from '../store/rerates';
import { currentPlanIdOf } from '../store/subscription-billing';
import { inTransaction, Transaction } from '../store/transactions';
import { isWalletLine } from '../domain/wallet-invoice';
import { giveBackWalletCredit, proposedWalletCreditBack } from './rerate-wallet';
import { creditUnpaidAdjustments, creditUnpaidInvoice, refundRerateCredit } from './rerate-refund';
import { claimLateEvents, findUsageClosure, lateEventIds as findLateEventIds, meteredMetricsOf, usageForCharges, type MeteredMetrics, type UsageClosure } from '../store/usage';
import { isProratedAggregation } from '../domain/seat-metrics';
import { discountedLine, discountOnPeriodUsage, listAmountOf, lockCreditedReversalsOfClosure, reversalCreditsOfPeriod } from '../store/reversal-credits';
import { formatMoney, sumMoney, toDecimal, ZERO } from '../domain/money';

const USAGE_LINE_KINDS = ['usage', 'credit', 'commitment_true_up'];

export type { RerateSummary };

function summarize(row: RerateRow): RerateSummary {
  return {
    rerateId: row.id,
    status: row.status,
    outcome: row.proposal?.outcome ?? 'none',
    total: row.proposal?.total ?? '0',
    resultInvoiceId: row.result_invoice_id,
  };
}

async function lockRerate(trx: Transaction, rerateId: string): Promise<RerateRow> {
  const row = await lockRerateRow(trx, rerateId);
  if (!row) throw ApplicationFailure.nonRetryable(`rerate ${rerateId} not found`, 'rerate_not_found');
  return row;
}

/**
 * What was billed for the period so far: the original invoice's usage lines plus earlier carried-out corrections
 * (their ids too: the proposal builds on exactly those), minus the credits for outcomes reversed after the close
 * (given on a later invoice or credit note, as given, or still owed there, at the plan rated at: once this
 * re-rating is carried out they are credited at its plan): the recomputation leaves those outcomes out.
 */
async function alreadyInvoiced(
  trx: Transaction,
  rerate: Pick<RerateRow, 'id' | 'invoice_id'>,
  period: PeriodBounds,
  closure: UsageClosure,
  ratePlan: PlanRow,
  lateEventIds: readonly string[],
): Promise<{ amounts: InvoicedAmount[]; correctionIds: string[]; reversalsCredited: string[] }> {
  const original = await listInvoiceLinesOfPeriod(trx, rerate.invoice_id, USAGE_LINE_KINDS, new Date(period.start));
  const corrections = await listFinalizedRerates(trx, rerate.invoice_id, rerate.id);
  const { lines: reversed, creditedIds } = await reversalCreditsOfPeriod(trx, String(closure.id), ratePlan, lateEventIds);
  const amounts = invoicedAmounts(
    // The wallet's own lines (credits applied) are how the invoice was paid, not what the usage cost.
    original.filter((line) => !isWalletLine(line)).map((line) => ({ kind: line.kind, metricCode: line.metric_code, description: line.description, amount: line.amount, breakdown: line.breakdown })),
    [
      // At their list amounts: a correction of a discounted period billed or credited its difference at the discount.
      ...corrections.flatMap((correction) => (correction.proposal?.lines ?? []).map((line) => ({ ...line, amount: listAmountOf(line.breakdown) ?? line.amount }))),
      ...reversed.map((line) => ({ ...line, description: line.description.replace(/ \(reversed outcomes\)$/, '') })),
    ],
  );
  return { amounts, correctionIds: corrections.map((correction) => correction.id).sort(), reversalsCredited: creditedIds };
}

/**
 * The difference at the discount the period's usage was billed at (the retention discount of the invoice that billed
 * it): the lists compare list prices, and a corrected price of a period billed at 30 % off credited the whole list
 * difference (-5.00 where the calls had cost 7.00 and now cost 3.50). Each line keeps its list amount
 * (`listAmount`), which the next re-rating counts as invoiced; the reversal credits are priced the same way.
 */
async function atBilledDiscount(trx: Transaction, subscriptionId: string, periodStart: Date, difference: RerateDifference, currency: string): Promise<RerateDifference> {
  const percentOff = await discountOnPeriodUsage(trx, subscriptionId, periodStart);
  if (!percentOff || difference.lines.length === 0) return difference;
  const lines = difference.lines.map((line) => discountedLine(line, percentOff, currency));
  const total = sumMoney(lines.map((line) => toDecimal(line.amount)));
  return { lines, total: formatMoney(total, currency), outcome: total.isZero() ? 'none' : total.isPositive() ? 'adjustment' : 'credit' };
}

/** What a re-rating is asked for: its invoice, and whether at another plan or with late usage. */
type RerateTerms = Pick<RerateRow, 'id' | 'invoice_id' | 'subscription_id' | 'customer_id' | 'corrected_plan_id' | 'include_late_usage'>;

/** The invoice's period rated again on these terms, and its difference to what was invoiced for it (nothing stored). */
async function rateAgain(trx: Transaction, rerate: RerateTerms) {
  const invoice = (await findInvoice(trx, rerate.invoice_id))!;
  if (!RERATEABLE_INVOICE_KINDS.has(invoice.kind)) {
    throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} is a ${invoice.kind} invoice: re-rate the invoice that billed the whole period`, 'invoice_not_rerateable');
  }
  const usageLine = await findFirstUsageLine(trx, invoice.id);
  if (!usageLine) throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} bills no usage`, 'invoice_has_no_usage');
  const period: PeriodBounds = { start: usageLine.period_start.toISOString(), end: usageLine.period_end.toISOString() };
  const closure = await findUsageClosure(trx, rerate.subscription_id, usageLine.period_start);
  if (!closure) throw ApplicationFailure.nonRetryable(`usage period ${period.start} of ${rerate.subscription_id} is not closed`, 'usage_not_closed');

  // The plan the period is billed at now: the last carried-out re-rating's, else the closure's (reversal credits
  // are priced at it). A re-rating without a corrected plan rates at it: at the closure's plan, it undid an
  // earlier price correction and billed its difference again.
  const lastRerate = await lastFinalizedRerateOfClosure(trx, String(closure.id));
  const billedPlanId = lastRerate?.proposal?.planId ?? closure.plan_id ?? (await currentPlanIdOf(trx, rerate.subscription_id));
  const plan = await findPlan(trx, rerate.corrected_plan_id ?? billedPlanId);
  const charges = usageCharges(plan.charges as Charge[]);
  const metered = await meteredMetricsOf(trx, charges);
  const scope = rerate.include_late_usage
    ? ({ kind: 'claimed_and_late', closeId: String(closure.id), customerId: rerate.customer_id, from: new Date(period.start), to: new Date(period.end) } as const)
    : ({ kind: 'claimed', closeId: String(closure.id) } as const);
  const usage = await usageForCharges(trx, metered, scope, plan.currency);
  // With the stretch's share of the allowances, as its invoice billed them (a plan change may have cut the period).
  const allowances = stretchAllowances(plan, await closureAllowanceShare(trx, String(closure.id)));
  const recomputed = rateDimensionalUsage({ currency: plan.currency, charges, usage, ...allowances });
  const lateEventIds: string[] = rerate.include_late_usage
    ? await findLateEventIds(trx, rerate.customer_id, metered.eventTypes, new Date(period.start), new Date(period.end))
    : [];
  const invoiced = await alreadyInvoiced(trx, rerate, period, closure, plan, lateEventIds);
  const difference = await atBilledDiscount(
    trx,
    rerate.subscription_id,
    usageLine.period_start,
    rerateDifference(recomputed.lines, invoiced.amounts, plan.currency, period),
    plan.currency,
  );
  return { invoice, usageLine, period, closure, plan, billedPlanId, metered, lateEventIds, invoiced, difference };
}

/**
 * The later invoices a proposal's late seat changes move: a seat change holds into every later period, so one that
 * arrived after a later period closed was left out of that period's opening level too. Each is rated again as a
 * re-rating of it without a corrected plan would (its own late usage aside), and named with that difference when
 * there is one. Rated now, before the changes are claimed: a later period opens from the unclaimed ones as it will
 * from the claimed ones, so the figure is the same after this proposal is carried out.
 */
async function laterInvoicesChanged(trx: Transaction, rerate: RerateTerms, period: PeriodBounds, metered: MeteredMetrics, lateEventIds: readonly string[]): Promise<LaterInvoiceChanged[]> {
  if (lateEventIds.length === 0 || !metered.metrics.some(({ metric }) => isProratedAggregation(metric.aggregation))) return [];
  const changed: LaterInvoiceChanged[] = [];
  for (const invoiceId of await laterSeatInvoices(trx, rerate.subscription_id, new Date(period.end), [...RERATEABLE_INVOICE_KINDS])) {
    const later = await rateAgain(trx, { ...rerate, invoice_id: invoiceId, corrected_plan_id: null, include_late_usage: false });
    if (later.difference.outcome === 'none') continue;
    changed.push({ invoiceId, usagePeriod: later.period, total: later.difference.total, outcome: later.difference.outcome });
  }
  return changed;
}

export function createReratingActivities(db: Database) {
  return {
    /** Recomputes the period and stores the proposal (idempotent: a computed proposal is returned as it is). */
    async proposeRerate(request: { rerateId: string }): Promise<RerateSummary> {
      return inTransaction(db, async (trx) => {
        const rerate = await lockRerate(trx, request.rerateId);
        if (rerate.status !== 'computing') return summarize(rerate);
        const { invoice, period, plan, billedPlanId, metered, lateEventIds, invoiced, difference } = await rateAgain(trx, rerate);
        const walletPart = await proposedWalletCreditBack(trx, rerate.id, invoice, difference);
        const proposal: RerateProposal = {
          usagePeriod: period,
          planId: plan.id,
          lines: difference.lines,
          total: difference.total,
          outcome: difference.outcome,
          lateEventIds,
          buildsOn: invoiced.correctionIds,
          // Rated at another plan than reversals are credited at until it is carried out, or billing late events the
          // credits do not count until then: which reversals were credited when it was computed.
          ...(plan.id !== billedPlanId || lateEventIds.length > 0 ? { reversalsCredited: invoiced.reversalsCredited } : {}),
          ...walletPart,
          ...(lateEventIds.length > 0 ? { laterInvoicesChanged: await laterInvoicesChanged(trx, rerate, period, metered, lateEventIds) } : {}),
        };
        const status: RerateStatus = difference.outcome === 'none' ? 'nothing_to_do' : 'proposed';
        const updated = await recordRerateProposal(trx, rerate.id, status, proposal);
        await writeAudit(trx, {
          actor: 'workflow',
          action: `rerate.${status}`,
          subjectType: 'invoice',
          subjectId: rerate.invoice_id,
          details: {
            rerateId: rerate.id,
            total: difference.total,
            outcome: difference.outcome,
            lines: difference.lines.length,
            ...walletPart,
            ...(proposal.laterInvoicesChanged?.length ? { laterInvoicesChanged: proposal.laterInvoicesChanged } : {}),
          },
        });
        return summarize(updated);
      });
    },

    async recordRerateDecision(request: { rerateId: string; approved: boolean | null; by: string; reason: string }): Promise<RerateSummary> {
      return inTransaction(db, async (trx) => {
        const rerate = await lockRerate(trx, request.rerateId);
        if (rerate.status !== 'proposed') return summarize(rerate);
        const status: RerateStatus = request.approved === null ? 'expired' : request.approved ? 'approved' : 'rejected';
        const updated = await recordRerateDecision(trx, rerate.id, { status, by: request.by, reason: request.reason, at: new Date() });
        await writeAudit(trx, { actor: request.by, action: `rerate.${status}`, subjectType: 'invoice', subjectId: rerate.invoice_id, reason: request.reason, details: { rerateId: rerate.id } });
        return summarize(updated);
      });
    },

    /**
     * Carries out an approved proposal once: an adjustment invoice (collected like any invoice) or a credit note
     * against the original invoice (refunded through the gateway), and claims the late events it billed.
     */
    async finalizeRerate(request: { rerateId: string }): Promise<RerateSummary> {
      const finalized = await inTransaction(db, async (trx) => {
        const rerate = await lockRerate(trx, request.rerateId);
        if (rerate.status !== 'approved') return summarize(rerate);
        const proposal = rerate.proposal!;
        // Re-ratings of one invoice are carried out one at a time (the invoice's row lock), each seeing the ones
        // before it. A proposal computed before another was carried out is the difference to a state that is gone:
        // carrying it out would credit or bill that other one's difference a second time. Finance asks again.
        const invoice = (await lockInvoice(trx, rerate.invoice_id))!;
        const since = (await listFinalizedRerates(trx, rerate.invoice_id, rerate.id)).find((correction) => !(proposal.buildsOn ?? []).includes(correction.id));
        if (since) {
          throw ApplicationFailure.nonRetryable(
            `re-rating ${rerate.id} was proposed before re-rating ${since.id} of invoice ${invoice.id} was carried out: ask for a new re-rating`,
            'rerate_proposal_stale',
          );
        }
        if (proposal.reversalsCredited) {
          // Until this re-rating is carried out, a reversal of the period is credited at the plan it is billed at now
          // and against the usage billed now (without this proposal's late events), not as this proposal counts it:
          // one credited since the proposal (owed then, or reversed since) makes carrying it out bill or credit the
          // difference for that outcome. The reversals are locked, so none is credited the old way between this
          // check and the commit (an invoice crediting one waits, then credits it against this re-rating).
          const closure = (await findUsageClosure(trx, rerate.subscription_id, new Date(proposal.usagePeriod.start)))!;
          const credited = await lockCreditedReversalsOfClosure(trx, String(closure.id));
          const since = credited.find((id) => !proposal.reversalsCredited!.includes(id));
          if (since) {
            throw ApplicationFailure.nonRetryable(
              `re-rating ${rerate.id} was proposed before a reversed outcome of its period was credited at the plan billed then: ask for a new re-rating`,
              'rerate_proposal_stale',
            );
          }
        }
        let resultInvoiceId: string | null;
        if (proposal.outcome === 'adjustment') {
          const draft = await insertAdjustmentDraft(trx, {
            customerId: rerate.customer_id,
            subscriptionId: rerate.subscription_id,
            currency: invoice.currency,
            periodStart: proposal.usagePeriod.start,
            periodEnd: proposal.usagePeriod.end,
          });
          const adjustment = await finalizeInvoice(trx, draft, proposal.lines, { rerateId: rerate.id });
          resultInvoiceId = adjustment.id;
        } else {
          // What the wallet paid goes back to it first; only the rest is refunded (docs/wallets.md).
          const credit = creditAmountOf(proposal.total).minus(await giveBackWalletCredit(trx, rerate.id, invoice, proposal, new Date()));
          // Then what the period's adjustments still owe (never collected, so never refunded from elsewhere).
          const onAdjustments = credit.gt(0) ? await creditUnpaidAdjustments(trx, rerate, credit) : { noteIds: [], credited: ZERO };
          const refund = credit.minus(onAdjustments.credited);
          resultInvoiceId = onAdjustments.noteIds[0] ?? null;
          if (refund.gt(0) && invoice.status !== 'paid') {
            // Unpaid, it has nothing to refund yet: the credit is taken off what it still owes (or refunded from the
            // charge already at the gateway), as a note for reversed outcomes is; what it does not owe is refunded
            // from the period's paid threshold invoices and adjustments.
            const noteId = await creditUnpaidInvoice(trx, rerate, invoice, refund);
            if (!noteId) throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} is ${invoice.status}: collect or void it before crediting`, 'invoice_not_paid');
            resultInvoiceId ??= noteId;
          } else if (refund.gt(0)) {
            // Against the re-rated invoice, and the period's threshold invoices and adjustments when it holds less.
            // Issued before the assignment: `??=` skips its right side once an adjustment's note is the result, and
            // the refund was never issued (undoing +2.00 down to −4.00: 2.00 off the adjustment, 2.00 never refunded).
            const noteId = await refundRerateCredit(trx, rerate, invoice, refund);
            resultInvoiceId ??= noteId;
          }
        }
        if (proposal.lateEventIds.length) {
          const closure = await findUsageClosure(trx, rerate.subscription_id, new Date(proposal.usagePeriod.start));
          await claimLateEvents(trx, proposal.lateEventIds, closure!.id);
        }
        const updated = await markRerateFinalized(trx, rerate.id, resultInvoiceId);
        await writeAudit(trx, { actor: 'workflow', action: 'rerate.finalized', subjectType: 'invoice', subjectId: rerate.invoice_id, details: { rerateId: rerate.id, resultInvoiceId } });
        return summarize(updated);
      });
      // An adjustment invoice is numbered after its commit (docs/scaling.md); an empty queue costs one read.
      await numberFinalizedInvoices(db);
      return finalized;
    },

    /**
     * The workflow's deterministic failure, kept on the row (`failed`, with its code and message) so that the API
     * shows it: the row otherwise keeps its last status (`approved`) for good. A re-rating already ended (finalized:
     * its adjustment's collection failed after) is left as it is. Idempotent: a repeat finds it failed.
     */
    async recordRerateFailure(failure: RerateFailureRecord): Promise<RerateSummary> {
      return inTransaction(db, async (trx) => {
        const rerate = await lockRerate(trx, failure.rerateId);
        const failed = await markRerateFailed(trx, rerate.id, { code: failure.code, message: failure.message });
        if (!failed) return summarize(rerate);
        await writeAudit(trx, { actor: 'workflow', action: 'rerate.failed', subjectType: 'invoice', subjectId: rerate.invoice_id, reason: failure.message, details: { rerateId: rerate.id, code: failure.code } });
        return summarize(failed);
      });
    },
  };
}
