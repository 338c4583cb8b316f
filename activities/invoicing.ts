import { ApplicationFailure } from '@temporalio/activity';
import { invoiceTotal, PeriodBounds, renewalInvoiceLines } from '../domain/invoice';
import { formatMoney, toDecimal } from '../domain/money';
import type { PlanSettings } from '../domain/plan-terms';
import type { Charge } from '../domain/rating';
import type { Database } from '../store/database';
import {
  findPeriodInvoice,
  insertDraftInvoice,
  insertInvoiceLines,
  InvoiceRow,
  nextInvoiceNumber,
} from '../store/invoices';
import { enqueueOutboxEvent } from '../store/outbox';
import { loadSubscriptionContext } from '../store/subscriptions';
import { findUsageClosure } from '../store/usage';
import type { PeriodInvoiceSummary } from '../workflows/definitions';

/**
 * `period`: opens a billing period: its flat fees in advance, plus the previous period's usage in arrears.
 * `closing`: the last invoice of an ending subscription: the final period's usage only.
 */
export type PeriodInvoiceKind = 'period' | 'closing';

export interface PeriodInvoiceRequest {
  readonly subscriptionId: string;
  readonly kind: PeriodInvoiceKind;
  readonly flatFeePeriod: PeriodBounds | null;
  /** Must have been closed by closeUsagePeriod first. */
  readonly usagePeriod: PeriodBounds | null;
}

const INVOICE_SERIES = 'INV';

function summarize(invoice: InvoiceRow): PeriodInvoiceSummary {
  return {
    invoiceId: invoice.id,
    number: invoice.number ?? '',
    total: formatMoney(toDecimal(invoice.total), invoice.currency),
    currency: invoice.currency,
    status: invoice.status,
  };
}

/** The period an invoice is identified by: the one it opens, or for a closing invoice the one it closes. */
function invoicePeriod(request: PeriodInvoiceRequest): PeriodBounds {
  const period = request.flatFeePeriod ?? request.usagePeriod;
  if (!period) throw ApplicationFailure.nonRetryable('an invoice needs a flat-fee period or a usage period', 'invalid_invoice_request');
  return period;
}

export function createInvoicingActivities(db: Database) {
  return {
    /**
     * Writes and finalizes a subscription's invoice for a period. Idempotent: the unique
     * (subscription, period start, kind) makes a second run return the first invoice.
     */
    async createPeriodInvoice(request: PeriodInvoiceRequest): Promise<PeriodInvoiceSummary> {
      const period = invoicePeriod(request);
      const existing = await findPeriodInvoice(db, request.subscriptionId, period.start, request.kind);
      if (existing) return summarize(existing);

      return db.transaction(async (trx) => {
        const context = await loadSubscriptionContext(trx, request.subscriptionId);
        if (!context) {
          throw ApplicationFailure.nonRetryable(`subscription ${request.subscriptionId} not found`, 'subscription_not_found');
        }
        const { subscription, plan, customer } = context;
        const draft = await insertDraftInvoice(trx, {
          customerId: customer.id,
          subscriptionId: subscription.id,
          kind: request.kind,
          currency: plan.currency,
          periodStart: period.start,
          periodEnd: period.end,
        });
        // A concurrent run got there first (it committed while we waited on the unique index).
        if (!draft) return summarize((await findPeriodInvoice(trx, subscription.id, period.start, request.kind))!);

        let usage: Parameters<typeof renewalInvoiceLines>[0]['usage'] = null;
        if (request.usagePeriod) {
          const closure = await findUsageClosure(trx, subscription.id, new Date(request.usagePeriod.start));
          if (!closure) {
            // Retryable on purpose: the workflow closes usage before invoicing, so this is a transient ordering.
            throw new Error(`usage period starting ${request.usagePeriod.start} is not closed yet`);
          }
          const totals = Object.entries(closure.totals).map(([metricCode, metricUsage]) => ({
            metricCode,
            quantity: metricUsage.quantity,
            ...(metricUsage.eventValues ? { eventValues: metricUsage.eventValues } : {}),
          }));
          usage = { period: request.usagePeriod, totals };
        }
        const settings = plan.settings as PlanSettings;
        const lines = renewalInvoiceLines({
          planName: plan.name,
          currency: plan.currency,
          flatFee: toDecimal(plan.flat_fee).toString(),
          charges: plan.charges as Charge[],
          flatFeePeriod: request.flatFeePeriod,
          usage,
          creditBucket: settings.creditBucket,
          minimumCommitment: settings.minimumCommitment,
        });
        await insertInvoiceLines(trx, draft.id, lines);
        const number = await nextInvoiceNumber(trx, INVOICE_SERIES);
        const total = invoiceTotal(lines, plan.currency);
        const [finalized] = await trx<InvoiceRow>('invoices')
          .where({ id: draft.id })
          .update({ number, total, status: 'open', finalized_at: trx.fn.now() as unknown as Date })
          .returning('*');
        if (request.flatFeePeriod) {
          await trx('subscriptions').where({ id: subscription.id }).update({
            current_period_start: new Date(request.flatFeePeriod.start),
            current_period_end: new Date(request.flatFeePeriod.end),
            updated_at: trx.fn.now(),
          });
        }
        await enqueueOutboxEvent(trx, {
          eventType: 'invoice.finalized',
          aggregateType: 'invoice',
          aggregateId: finalized.id,
          dedupeKey: `invoice.finalized:${finalized.id}`,
          payload: { invoiceId: finalized.id, number, total, currency: plan.currency, customerId: customer.id },
        });
        return summarize(finalized);
      });
    },
  };
}
