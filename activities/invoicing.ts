import { ApplicationFailure } from '@temporalio/activity';
import { flatFeeLines, invoiceTotal } from '../domain/invoice';
import { formatMoney, toDecimal } from '../domain/money';
import type { Database } from '../store/database';
import { enqueueOutboxEvent } from '../store/outbox';
import {
  findPeriodInvoice,
  insertDraftInvoice,
  insertInvoiceLines,
  InvoiceRow,
  nextInvoiceNumber,
} from '../store/invoices';
import { loadSubscriptionContext } from '../store/subscriptions';
import type { PeriodInvoiceSummary } from '../workflows/definitions';

export interface PeriodInvoiceRequest {
  readonly subscriptionId: string;
  readonly periodIndex: number;
  readonly periodStart: string;
  readonly periodEnd: string;
}

const PERIOD_INVOICE = 'period';
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

export function createInvoicingActivities(db: Database) {
  return {
    /**
     * Writes and finalizes the invoice that opens a billing period: the flat fee in advance.
     * Idempotent: the unique (subscription, period start, kind) makes a second run return the first invoice.
     */
    async createPeriodInvoice(request: PeriodInvoiceRequest): Promise<PeriodInvoiceSummary> {
      const existing = await findPeriodInvoice(db, request.subscriptionId, request.periodStart, PERIOD_INVOICE);
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
          kind: PERIOD_INVOICE,
          currency: plan.currency,
          periodStart: request.periodStart,
          periodEnd: request.periodEnd,
        });
        // A concurrent run got there first (it committed while we waited on the unique index).
        if (!draft) return summarize((await findPeriodInvoice(trx, subscription.id, request.periodStart, PERIOD_INVOICE))!);

        const lines = flatFeeLines({
          planName: plan.name,
          flatFee: plan.flat_fee,
          currency: plan.currency,
          periodStart: request.periodStart,
          periodEnd: request.periodEnd,
        });
        await insertInvoiceLines(trx, draft.id, lines);
        const number = await nextInvoiceNumber(trx, INVOICE_SERIES);
        const total = invoiceTotal(lines, plan.currency);
        const [finalized] = await trx<InvoiceRow>('invoices')
          .where({ id: draft.id })
          .update({ number, total, status: 'open', finalized_at: trx.fn.now() as unknown as Date })
          .returning('*');
        await trx('subscriptions').where({ id: subscription.id }).update({
          current_period_start: new Date(request.periodStart),
          current_period_end: new Date(request.periodEnd),
          updated_at: trx.fn.now(),
        });
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
