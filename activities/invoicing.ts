import { ApplicationFailure } from '@temporalio/activity';
import { DraftInvoiceLine, PeriodBounds, recurringFee as recurringFeeOf, renewalInvoiceLines } from '../domain/invoice';
import { formatMoney, toDecimal } from '../domain/money';
import { hasAllowances, stretchAllowances, type StretchAllowances } from '../domain/allowances';
import { discountLine, planChangeProrationLines, unusedTimeCredit } from '../domain/proration';
import type { DimensionalUsage } from '../domain/dimensions';
import { reversalCreditsOfNextInvoice } from './reversal-credits';
import type { Charge } from '../domain/rating';
import { findPlan, PlanRow } from '../store/catalog';
import type { Database } from '../store/database';
import { discountOnPeriodFee, finalizeInvoice, findPeriodInvoice, insertDraftInvoice, InvoiceRow, issueFinalizedInvoice } from '../store/invoices';
import { allowanceShareOf } from '../store/plan-changes';
import { startSubscriptionPeriod } from '../store/subscription-billing';
import { loadSubscriptionContext, SubscriptionContext } from '../store/subscriptions';
import { inTransaction, Transaction } from '../store/transactions';
import { findUsageClosure } from '../store/usage';
import type { PeriodInvoiceRequest, ProrationInvoiceRequest } from '../contract/invoicing';
import type { PeriodInvoiceSummary } from '../contract/subscription';
import { closedUsageLinesBefore, withWalletCredits } from './wallet';
import { recordPlanBucket } from './plan-included-credit';
import { thresholdCoverFor } from './threshold-credits';

/**
 * `period`: opens a billing period: its flat fees in advance, plus the previous period's usage in arrears.
 * `closing`: the last invoice of an ending subscription: the final usage, and a credit for unused time if the plan
 * gives one. `proration`: an immediate plan change mid-period.
 */
export type InvoiceKind = 'period' | 'closing' | 'proration';

export type { PeriodInvoiceRequest, ProrationInvoiceRequest };

function summarize(invoice: InvoiceRow): PeriodInvoiceSummary {
  return {
    invoiceId: invoice.id,
    number: invoice.number ?? '',
    total: formatMoney(toDecimal(invoice.total), invoice.currency),
    currency: invoice.currency,
    status: invoice.status,
  };
}

/** A plan's recurring fee: the flat fee plus any flat charges, as one decimal string. */
function recurringFee(plan: PlanRow): string {
  return recurringFeeOf(plan.flat_fee, plan.charges as Charge[]);
}

async function closedUsage(trx: Transaction, subscriptionId: string, period: PeriodBounds): Promise<DimensionalUsage[]> {
  const closure = await findUsageClosure(trx, subscriptionId, new Date(period.start));
  // Retryable on purpose: the workflow closes usage before invoicing, so this is only a transient ordering.
  if (!closure) throw new Error(`usage period starting ${period.start} is not closed yet`);
  return Object.entries(closure.totals).map(([metricCode, usage]) => ({
    metricCode,
    quantity: usage.quantity,
    ...(usage.eventValues ? { eventValues: usage.eventValues } : {}),
    ...(usage.groups ? { groups: usage.groups } : {}),
    // A plain cost_plus charge prices its usage by these per-table shares; without them it would bill 0 as uncosted.
    ...(usage.costs ? { costs: usage.costs } : {}),
  }));
}

/** The stretch's usage lines, with its share of the plan's allowances (a stretch a plan change cut gets part of them). */
function usageLinesOf(plan: PlanRow, period: PeriodBounds, totals: DimensionalUsage[], allowances: StretchAllowances): DraftInvoiceLine[] {
  return renewalInvoiceLines({
    planName: plan.name,
    currency: plan.currency,
    flatFee: '0',
    charges: plan.charges as Charge[],
    flatFeePeriod: null,
    usage: { period, totals },
    ...allowances,
  });
}

/** The closed stretch's usage lines, and the plan's credit bucket recorded with what it covered. */
async function closedUsageLines(trx: Transaction, context: SubscriptionContext, plan: PlanRow, usagePeriod: PeriodBounds): Promise<DraftInvoiceLine[]> {
  const subscriptionId = context.subscription.id;
  // The plan changes that cut the stretch are read only for a plan with allowances (the usual period pays no read).
  const allowances = hasAllowances(plan) ? stretchAllowances(plan, await allowanceShareOf(trx, subscriptionId, usagePeriod)) : stretchAllowances(plan);
  const usageLines = usageLinesOf(plan, usagePeriod, await closedUsage(trx, subscriptionId, usagePeriod), allowances);
  await recordPlanBucket(trx, { customerId: context.customer.id, subscriptionId, plan, bucket: allowances.creditBucket, usagePeriod, usageLines });
  return usageLines;
}

/**
 * Writes and finalizes an invoice in one transaction (its number comes after the commit), unless (subscription,
 * period start, kind) exists: then the existing invoice is returned. This unique key is what makes every
 * invoicing activity idempotent.
 */
async function writeInvoiceOnce(
  subscriptionId: string,
  kind: InvoiceKind,
  period: PeriodBounds,
  trx: Transaction,
  context: SubscriptionContext,
  buildLines: () => Promise<DraftInvoiceLine[]>,
): Promise<InvoiceRow> {
  const { subscription, plan, customer } = context;
  const draft = await insertDraftInvoice(trx, {
    customerId: customer.id,
    subscriptionId: subscription.id,
    kind,
    currency: plan.currency,
    periodStart: period.start,
    periodEnd: period.end,
  });
  // A concurrent run got there first (it committed while we waited on the unique index).
  if (!draft) return (await findPeriodInvoice(trx, subscriptionId, period.start, kind))!;

  return finalizeInvoice(trx, draft, await buildLines());
}

/**
 * The summary the workflow gets, once the invoice has its number: the numbering step runs after the finalizing
 * transaction commits (docs/scaling.md), so the workflow never sees, notes or charges an unnumbered invoice.
 */
async function issuedSummary(db: Database, invoice: InvoiceRow): Promise<PeriodInvoiceSummary> {
  return summarize(await issueFinalizedInvoice(db, invoice));
}

async function subscriptionContext(trx: Transaction, subscriptionId: string): Promise<SubscriptionContext> {
  const context = await loadSubscriptionContext(trx, subscriptionId);
  if (!context) throw ApplicationFailure.nonRetryable(`subscription ${subscriptionId} not found`, 'subscription_not_found');
  return context;
}

export function createInvoicingActivities(db: Database) {
  return {
    /** The invoice that opens a period (flat fees in advance + previous usage in arrears), or the closing one. */
    async createPeriodInvoice(request: PeriodInvoiceRequest): Promise<PeriodInvoiceSummary> {
      const period = request.flatFeePeriod ?? request.usagePeriod ?? request.unusedFeeCredit?.period;
      if (!period) throw ApplicationFailure.nonRetryable('an invoice needs a period', 'invalid_invoice_request');
      const existing = await findPeriodInvoice(db, request.subscriptionId, period.start, request.kind);
      if (existing) return issuedSummary(db, existing);

      const finalized = await inTransaction(db, async (trx) => {
        const context = await subscriptionContext(trx, request.subscriptionId);
        const invoice = await writeInvoiceOnce(request.subscriptionId, request.kind, period, trx, context, async () => {
          const lines: DraftInvoiceLine[] = [];
          if (request.flatFeePeriod) {
            const plan = request.flatFeePlanId ? await findPlan(trx, request.flatFeePlanId) : context.plan;
            lines.push(
              ...renewalInvoiceLines({
                planName: plan.name,
                currency: plan.currency,
                flatFee: toDecimal(plan.flat_fee).toString(),
                charges: plan.charges as Charge[],
                flatFeePeriod: request.flatFeePeriod,
                usage: null,
              }),
            );
          }
          let usagePlan: PlanRow | undefined;
          let reversalCreditsAt = -1;
          if (request.usagePeriod) {
            const plan = request.usagePlanId ? await findPlan(trx, request.usagePlanId) : context.plan;
            usagePlan = plan;
            lines.push(...(await closedUsageLines(trx, context, plan, request.usagePeriod)));
            reversalCreditsAt = lines.length;
          }
          if (request.unusedFeeCredit) {
            const plan = context.plan;
            const from = new Date(request.unusedFeeCredit.from);
            const percentOff = await discountOnPeriodFee(trx, request.subscriptionId, request.unusedFeeCredit.period, from);
            const credit = unusedTimeCredit({ planName: plan.name, fullFee: recurringFee(plan), percentOff, currency: plan.currency, period: request.unusedFeeCredit.period, from });
            if (credit) lines.push(credit);
          }
          // The discount is taken off what this invoice bills, not off the reversal credits it carries: those give back
          // what their outcomes were paid, at the discount of the invoice that billed them (store/reversal-credits.ts).
          // Taken off them too, a reversal billed at the list price was given back 30 % short, and one billed at 30 %
          // off was discounted twice.
          const discount = request.discountPercentOff
            ? discountLine(lines, request.discountPercentOff, context.plan.currency, period)
            : null;
          if (request.usagePeriod && usagePlan) {
            // Outcomes reversed after their period was invoiced: credited here, once (docs/pricing.md), after the
            // usage lines. One of this very period (reversed between its close and now) was billed at this invoice's
            // discount.
            const billedHere = { periodStart: request.usagePeriod.start, percentOff: discount ? request.discountPercentOff! : null };
            // What an unpaid invoice of their period still owes is taken off it first (a credit note): never paid,
            // credited here it was given back (a refund, if it was paid meanwhile, stays pending for the janitor to send).
            lines.splice(reversalCreditsAt, 0, ...(await reversalCreditsOfNextInvoice(trx, request.subscriptionId, context.customer.id, `${request.kind}:${period.start}`, usagePlan, billedHere)));
          }
          const built = discount ? [...lines, discount] : lines;
          // Prepaid credit pays usage last (docs/wallets.md); no wallet, no change.
          if (!request.usagePeriod) return built;
          // What threshold invoices already billed of this usage (docs/pricing.md) comes off before the wallet pays,
          // so prepaid credit never pays usage the customer paid on a threshold invoice.
          const thresholds = await thresholdCoverFor(trx, request.subscriptionId, request.usagePeriod, context.plan.currency);
          return withWalletCredits(trx, {
            customerId: context.customer.id,
            currency: context.plan.currency,
            drawKey: `invoice:${request.subscriptionId}:${request.kind}:${new Date(period.start).toISOString()}`, // = invoiceDrawKey(invoice)
            usagePeriod: request.usagePeriod,
            lines: [...built, ...thresholds.credits],
            linesBefore: usagePlan && closedUsageLinesBefore(trx, request.subscriptionId, usagePlan, request.usagePeriod),
            thresholdBilled: thresholds.billedByLine,
          });
        });
        if (request.flatFeePeriod) {
          await startSubscriptionPeriod(trx, request.subscriptionId, request.flatFeePeriod);
        }
        return invoice;
      });
      return issuedSummary(db, finalized);
    },

    /**
     * An immediate plan change mid-period: credit for the old plan's unused time, charge for the new plan's
     * remaining time, and the usage so far rated at the old plan's prices.
     */
    async createProrationInvoice(request: ProrationInvoiceRequest): Promise<PeriodInvoiceSummary> {
      const identity: PeriodBounds = { start: request.changeAt, end: request.period.end };
      const existing = await findPeriodInvoice(db, request.subscriptionId, identity.start, 'proration');
      if (existing) return issuedSummary(db, existing);

      const finalized = await inTransaction(db, async (trx) => {
        const context = await subscriptionContext(trx, request.subscriptionId);
        return writeInvoiceOnce(request.subscriptionId, 'proration', identity, trx, context, async () => {
          // One after the other on the transaction's one connection.
          const oldPlan = await findPlan(trx, request.oldPlanId);
          const newPlan = await findPlan(trx, request.newPlanId);
          const changeAt = new Date(request.changeAt);
          const percentOff = await discountOnPeriodFee(trx, request.subscriptionId, request.period, changeAt, request.unwrittenFeeDiscount ?? null);
          const lines = planChangeProrationLines({
            currency: newPlan.currency,
            period: request.period,
            changeAt,
            oldPlan: { name: oldPlan.name, recurringFee: recurringFee(oldPlan), percentOff },
            newPlan: { name: newPlan.name, recurringFee: recurringFee(newPlan) },
          });
          if (request.usagePeriod) {
            lines.push(...(await closedUsageLines(trx, context, oldPlan, request.usagePeriod)));
          }
          // The prorated fees are flat and the wallet never pays a flat fee: it may pay only the usage up to the
          // change, when the old plan metered any (docs/wallets.md).
          if (!request.usagePeriod) return lines;
          // As on the period invoice: what threshold invoices already billed comes off before the wallet pays.
          const thresholds = await thresholdCoverFor(trx, request.subscriptionId, request.usagePeriod, newPlan.currency);
          return withWalletCredits(trx, {
            customerId: context.customer.id,
            currency: newPlan.currency,
            drawKey: `invoice:${request.subscriptionId}:proration:${new Date(identity.start).toISOString()}`, // = invoiceDrawKey(invoice)
            usagePeriod: request.usagePeriod,
            lines: [...lines, ...thresholds.credits],
            linesBefore: closedUsageLinesBefore(trx, request.subscriptionId, oldPlan, request.usagePeriod),
            thresholdBilled: thresholds.billedByLine,
          });
        });
      });
      return issuedSummary(db, finalized);
    },
  };
}
