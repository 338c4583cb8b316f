/**
 * Progressive billing (docs/pricing.md): the threshold invoice. The workflow asks whenever a threshold signal
 * arrives; this activity decides from Postgres whether one is due, so a stale or repeated signal writes nothing.
 */
import { stretchUsageTerms } from '../domain/allowances';
import { allowanceShareOf } from '../store/plan-changes';
import { ApplicationFailure } from '@temporalio/activity';
import type { ThresholdInvoiceRequest, ThresholdInvoiceResult } from '../contract/thresholds';
import type { PeriodInvoiceSummary } from '../contract/subscription';
import { formatMoney, toDecimal } from '../domain/money';
import { usageCharges } from '../domain/plan-terms';
import {
  accruedAmount,
  accruedUsageLines,
  decideThresholdInvoice,
  thresholdInvoiceLines,
  usageThresholdsOf,
} from '../domain/progressive-billing';
import type { Charge } from '../domain/rating';
import { findPlan } from '../store/catalog';
import type { Database } from '../store/database';
import { finalizeInvoice, findIssuedInvoice, InvoiceRow } from '../store/invoices';
import { loadSubscriptionContext } from '../store/subscriptions';
import {
  billedThresholds,
  hasPaymentAttempt,
  insertThresholdDraft,
  listThresholdInvoices,
  ThresholdInvoiceRow,
} from '../store/threshold-invoices';
import { inTransaction } from '../store/transactions';
import { findUsageClosure } from '../store/usage';
import { openUsageForCharges } from '../store/usage-preview';

export type { ThresholdInvoiceRequest, ThresholdInvoiceResult };

const NOTHING_DUE: ThresholdInvoiceResult = { invoice: null, thresholdIndex: null, threshold: null };

/** The invoice as the workflow gets it: numbered (the numbering step runs after the finalizing commit). */
async function issued(db: Database, invoice: InvoiceRow): Promise<PeriodInvoiceSummary> {
  const row = (await findIssuedInvoice(db, invoice.id)) ?? invoice;
  return { invoiceId: row.id, number: row.number ?? '', total: formatMoney(toDecimal(row.total), row.currency), currency: row.currency, status: row.status };
}

async function resultFor(db: Database, row: ThresholdInvoiceRow): Promise<ThresholdInvoiceResult> {
  return { invoice: await issued(db, row), thresholdIndex: row.threshold_index, threshold: row.threshold_amount === null ? null : formatMoney(toDecimal(row.threshold_amount), row.currency) };
}

/**
 * A threshold invoice nobody has tried to charge yet: written by an attempt whose answer the workflow never
 * recorded (the worker stopped between the invoice and its charge). The retry collects that one, never a second.
 */
async function uncollected(db: Database, rows: readonly ThresholdInvoiceRow[]): Promise<ThresholdInvoiceRow | undefined> {
  for (const row of rows) {
    const finalized = row.finalization_seq !== null && row.finalization_seq !== undefined;
    if (finalized && (row.status === 'draft' || row.status === 'open') && toDecimal(row.total).gt(0) && !(await hasPaymentAttempt(db, row.id))) return row;
  }
  return undefined;
}

export function createThresholdActivities(db: Database) {
  return {
    /**
     * Rates the open usage stretch so far and, when it has reached a threshold above every one invoiced in the
     * stretch, writes and finalizes the threshold invoice for what accrued minus what earlier ones billed. At most
     * one invoice per (subscription, stretch start, threshold index): the unique index of migration 0530.
     */
    async createThresholdInvoice(request: ThresholdInvoiceRequest): Promise<ThresholdInvoiceResult> {
      const context = await loadSubscriptionContext(db, request.subscriptionId);
      if (!context) throw ApplicationFailure.nonRetryable(`subscription ${request.subscriptionId} not found`, 'subscription_not_found');
      const plan = await findPlan(db, request.planId);
      const thresholds = usageThresholdsOf(plan.settings);
      if (!thresholds) return NOTHING_DUE;
      // Once the stretch's usage is closed, the invoice that closes it bills the rest: no threshold invoice then.
      if (await findUsageClosure(db, request.subscriptionId, new Date(request.usageStart))) return NOTHING_DUE;

      const rows = await listThresholdInvoices(db, request.subscriptionId, request.usageStart);
      const pending = await uncollected(db, rows);
      if (pending) return resultFor(db, pending);

      const period = { start: request.usageStart, end: request.at };
      const charges = usageCharges(plan.charges as Charge[]);
      const usage = await openUsageForCharges(db, context.customer.id, charges, plan.currency, new Date(period.start), new Date(period.end));
      const accrued = accruedUsageLines({
        planName: plan.name,
        currency: plan.currency,
        charges,
        period,
        usage,
        // The stretch's share of the bucket and of the charges' own terms, as the invoice that closes the stretch applies them.
        ...stretchUsageTerms(plan, await allowanceShareOf(db, request.subscriptionId, { start: period.start, end: null })),
      });
      const earlier = billedThresholds(rows);
      const decision = decideThresholdInvoice({ thresholds, currency: plan.currency, accrued: accruedAmount(accrued, plan.currency), earlier });
      if (!decision) return NOTHING_DUE;

      const finalized = await inTransaction(db, async (trx) => {
        const draft = await insertThresholdDraft(trx, {
          customerId: context.customer.id,
          subscriptionId: request.subscriptionId,
          currency: plan.currency,
          usageStart: period.start,
          ratedUntil: period.end,
          thresholdIndex: decision.thresholdIndex,
          thresholdAmount: decision.threshold,
        });
        // Written concurrently by an earlier attempt (it committed while we waited on the unique index).
        if (!draft) return (await listThresholdInvoices(trx, request.subscriptionId, period.start)).find((row) => row.threshold_index === decision.thresholdIndex)!;
        const lines = thresholdInvoiceLines({ accrued, earlier, currency: plan.currency, period });
        return (await finalizeInvoice(trx, draft, lines, { thresholdIndex: decision.thresholdIndex, threshold: decision.threshold })) as ThresholdInvoiceRow;
      });
      return resultFor(db, finalized);
    },
  };
}
