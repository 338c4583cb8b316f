/**
 * Manual re-rating: recompute a closed usage period with the same rating function, propose the difference to
 * what was invoiced, and after a finance approval carry it out as an adjustment invoice or a credit note. The
 * original invoice is never edited; every step is in the audit log.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Knex } from 'knex';
import type { RerateState as RerateSummary } from '../contract/rerating';
import type { PeriodBounds } from '../domain/invoice';
import type { RerateProposal, RerateRow, RerateStatus } from '../store/rerates';
import { invoiceTotal } from '../domain/invoice';
import { toDecimal } from '../domain/money';
import { PlanSettings, usageCharges } from '../domain/plan-terms';
import { Charge, rateUsage } from '../domain/rating';
import { InvoicedAmount, lineKey, rerateDifference } from '../domain/rerating';
import { issueCreditNote } from '../store/credit-notes';
import type { Database } from '../store/database';
import { InvoiceLineRow, InvoiceRow, insertInvoiceLines, nextInvoiceNumber } from '../store/invoices';
import { findMetricsByCode } from '../store/catalog';
import { enqueueOutboxEvent, writeAudit } from '../store/outbox';
import { findPlan } from '../store/catalog';
import { aggregateMetric, findUsageClosure } from '../store/usage';

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

async function lockRerate(trx: Knex.Transaction, rerateId: string): Promise<RerateRow> {
  const row = await trx<RerateRow>('rerates').where({ id: rerateId }).forUpdate().first();
  if (!row) throw ApplicationFailure.nonRetryable(`rerate ${rerateId} not found`, 'rerate_not_found');
  return row;
}

/** What was billed for the period so far: the original invoice's usage lines plus earlier carried-out corrections. */
async function alreadyInvoiced(trx: Knex.Transaction, rerate: RerateRow, period: PeriodBounds): Promise<InvoicedAmount[]> {
  const original = await trx<InvoiceLineRow>('invoice_lines')
    .where({ invoice_id: rerate.invoice_id })
    .whereIn('kind', USAGE_LINE_KINDS)
    .andWhere('period_start', new Date(period.start));
  const corrections = await trx<RerateRow>('rerates').where({ invoice_id: rerate.invoice_id, status: 'finalized' }).whereNot({ id: rerate.id });
  return [
    ...original.map((line) => ({ key: lineKey({ kind: line.kind, metricCode: line.metric_code }), description: line.description, amount: toDecimal(line.amount).toString() })),
    ...corrections.flatMap((correction) =>
      (correction.proposal?.lines ?? []).map((line) => ({ key: lineKey(line), description: line.description.replace(/ \(correction\)$/, ''), amount: line.amount })),
    ),
  ];
}

export function createReratingActivities(db: Database) {
  return {
    /** Recomputes the period and stores the proposal (idempotent: a computed proposal is returned as it is). */
    async proposeRerate(request: { rerateId: string }): Promise<RerateSummary> {
      return db.transaction(async (trx) => {
        const rerate = await lockRerate(trx, request.rerateId);
        if (rerate.status !== 'computing') return summarize(rerate);
        const invoice = (await trx<InvoiceRow>('invoices').where({ id: rerate.invoice_id }).first())!;
        const usageLine = await trx<InvoiceLineRow>('invoice_lines').where({ invoice_id: invoice.id, kind: 'usage' }).orderBy('position').first();
        if (!usageLine) throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} bills no usage`, 'invoice_has_no_usage');
        const period: PeriodBounds = { start: usageLine.period_start.toISOString(), end: usageLine.period_end.toISOString() };
        const closure = await findUsageClosure(trx, rerate.subscription_id, usageLine.period_start);
        if (!closure) throw ApplicationFailure.nonRetryable(`usage period ${period.start} of ${rerate.subscription_id} is not closed`, 'usage_not_closed');

        const planId = rerate.corrected_plan_id ?? closure.plan_id ?? (await trx('subscriptions').where({ id: rerate.subscription_id }).first('plan_id')).plan_id;
        const plan = await findPlan(trx, planId);
        const charges = usageCharges(plan.charges as Charge[]);
        const metrics = await findMetricsByCode(trx, [...new Set(charges.map((charge) => charge.metricCode))]);
        const scope = rerate.include_late_usage
          ? ({ kind: 'claimed_and_late', closeId: String(closure.id), customerId: rerate.customer_id, from: new Date(period.start), to: new Date(period.end) } as const)
          : ({ kind: 'claimed', closeId: String(closure.id) } as const);
        const usage = await Promise.all(
          metrics.map(async (metric) => ({
            metricCode: metric.code,
            ...(await aggregateMetric(trx, metric, scope, charges.some((charge) => charge.metricCode === metric.code && charge.price.model === 'percentage'))),
          })),
        );
        const settings = plan.settings as PlanSettings;
        const recomputed = rateUsage({ currency: plan.currency, charges, usage, creditBucket: settings.creditBucket, minimumCommitment: settings.minimumCommitment });
        const difference = rerateDifference(recomputed.lines, await alreadyInvoiced(trx, rerate, period), plan.currency, period);

        const lateEventIds: string[] = rerate.include_late_usage
          ? (
              await trx('usage_events')
                .where({ customer_id: rerate.customer_id })
                .whereNull('period_close_id')
                .whereIn('event_type', [...new Set(metrics.map((metric) => metric.event_type))])
                .andWhere('occurred_at', '>=', new Date(period.start))
                .andWhere('occurred_at', '<', new Date(period.end))
                .select('id')
            ).map((row: { id: string }) => String(row.id))
          : [];
        const proposal: RerateProposal = { usagePeriod: period, planId: plan.id, lines: difference.lines, total: difference.total, outcome: difference.outcome, lateEventIds };
        const status: RerateStatus = difference.outcome === 'none' ? 'nothing_to_do' : 'proposed';
        const [updated] = await trx<RerateRow>('rerates').where({ id: rerate.id }).update({ status, proposal: JSON.stringify(proposal) as never }).returning('*');
        await writeAudit(trx, {
          actor: 'workflow',
          action: `rerate.${status}`,
          subjectType: 'invoice',
          subjectId: rerate.invoice_id,
          details: { rerateId: rerate.id, total: difference.total, outcome: difference.outcome, lines: difference.lines.length },
        });
        return summarize(updated);
      });
    },

    async recordRerateDecision(request: { rerateId: string; approved: boolean | null; by: string; reason: string }): Promise<RerateSummary> {
      return db.transaction(async (trx) => {
        const rerate = await lockRerate(trx, request.rerateId);
        if (rerate.status !== 'proposed') return summarize(rerate);
        const status: RerateStatus = request.approved === null ? 'expired' : request.approved ? 'approved' : 'rejected';
        const [updated] = await trx<RerateRow>('rerates')
          .where({ id: rerate.id })
          .update({ status, decided_by: request.by, decision_reason: request.reason, decided_at: new Date() })
          .returning('*');
        await writeAudit(trx, { actor: request.by, action: `rerate.${status}`, subjectType: 'invoice', subjectId: rerate.invoice_id, reason: request.reason, details: { rerateId: rerate.id } });
        return summarize(updated);
      });
    },

    /**
     * Carries out an approved proposal once: an adjustment invoice (collected like any invoice) or a credit note
     * against the original invoice (refunded through the gateway), and claims the late events it billed.
     */
    async finalizeRerate(request: { rerateId: string }): Promise<RerateSummary> {
      return db.transaction(async (trx) => {
        const rerate = await lockRerate(trx, request.rerateId);
        if (rerate.status !== 'approved') return summarize(rerate);
        const proposal = rerate.proposal!;
        const invoice = (await trx<InvoiceRow>('invoices').where({ id: rerate.invoice_id }).first())!;
        let resultInvoiceId: string;
        if (proposal.outcome === 'adjustment') {
          const [adjustment] = await trx<InvoiceRow>('invoices')
            .insert({
              customer_id: rerate.customer_id,
              subscription_id: rerate.subscription_id,
              kind: 'adjustment',
              status: 'draft',
              currency: invoice.currency,
              period_start: new Date(proposal.usagePeriod.start),
              period_end: new Date(proposal.usagePeriod.end),
            })
            .returning('*');
          await insertInvoiceLines(trx, adjustment.id, proposal.lines);
          const number = await nextInvoiceNumber(trx, 'INV');
          const total = invoiceTotal(proposal.lines, invoice.currency);
          await trx('invoices').where({ id: adjustment.id }).update({ number, total, status: 'open', finalized_at: trx.fn.now() });
          await enqueueOutboxEvent(trx, {
            eventType: 'invoice.finalized',
            aggregateType: 'invoice',
            aggregateId: adjustment.id,
            dedupeKey: `invoice.finalized:${adjustment.id}`,
            payload: { invoiceId: adjustment.id, number, kind: 'adjustment', total, currency: invoice.currency, customerId: rerate.customer_id, rerateId: rerate.id },
          });
          resultInvoiceId = adjustment.id;
        } else {
          if (invoice.status !== 'paid') {
            // A credit is refunded against what was paid; an unpaid invoice has nothing to refund yet.
            throw ApplicationFailure.nonRetryable(`invoice ${invoice.id} is ${invoice.status}: collect or void it before crediting`, 'invoice_not_paid');
          }
          const issued = await issueCreditNote(trx as unknown as Knex, {
            invoiceId: invoice.id,
            amount: toDecimal(proposal.total).abs(),
            reason: `re-rating ${rerate.id}: ${rerate.reason}`,
            idempotencyKey: `rerate:${rerate.id}`,
            actor: rerate.decided_by ?? 'finance',
          });
          resultInvoiceId = issued.creditNote.id;
        }
        if (proposal.lateEventIds.length) {
          const closure = await findUsageClosure(trx, rerate.subscription_id, new Date(proposal.usagePeriod.start));
          await trx('usage_events').whereIn('id', proposal.lateEventIds).whereNull('period_close_id').update({ period_close_id: closure!.id });
        }
        const [updated] = await trx<RerateRow>('rerates').where({ id: rerate.id }).update({ status: 'finalized', result_invoice_id: resultInvoiceId }).returning('*');
        await writeAudit(trx, { actor: 'workflow', action: 'rerate.finalized', subjectType: 'invoice', subjectId: rerate.invoice_id, details: { rerateId: rerate.id, resultInvoiceId } });
        return summarize(updated);
      });
    },
  };
}
