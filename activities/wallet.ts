/**
 * Prepaid credit on invoices (issue 12, docs/wallets.md): after an invoice's lines are built, the customer's wallet
 * pays what it may of the usage, in the invoice's own transaction, so the ledger entries and the invoice commit
 * together or not at all. Customers without a wallet get exactly the invoice they got before.
 */
import { stretchUsageTerms } from '../domain/allowances';
import { closureAllowanceShare } from '../store/plan-changes';
import { rateDimensionalUsage } from '../domain/dimensions';
import { DraftInvoiceLine, PeriodBounds, ratedLinesForPeriod } from '../domain/invoice';
import { usageCharges } from '../domain/plan-terms';
import type { Charge } from '../domain/rating';
import type { PlanRow } from '../store/catalog';
import { findUsageClosure, usageForCharges } from '../store/usage';
import { Dec, formatMoney, sumMoney, toDecimal } from '../domain/money';
import { creditsAppliedLines, keptAfterDiscounts, type ThresholdBilledByLine, walletPayableCharges, walletPayableLineCharges } from '../domain/wallet-invoice';
import type { Transaction } from '../store/transactions';
import { applyWalletCredits } from '../store/wallets';
import { thresholdCreditsFor } from './threshold-credits';

export interface InvoiceWalletRequest {
  readonly customerId: string;
  readonly currency: string;
  /** Identifies the invoice (subscription, kind, period start): drawing twice with it draws once. */
  readonly drawKey: string;
  /** The usage period the invoice bills: grants in effect during it may pay. */
  readonly usagePeriod: PeriodBounds;
  readonly lines: readonly DraftInvoiceLine[];
  /** The lines the usage before a moment of the usage period would have had (for grants expiring inside it). */
  readonly linesBefore?: (at: Date) => Promise<readonly DraftInvoiceLine[]>;
  /** What the usage period's threshold invoices billed of each usage line (store/threshold-invoices.ts thresholdBilledUsage). */
  readonly thresholdBilled?: ThresholdBilledByLine;
}

/** The invoice's lines, then one "credits applied" line per grant drawn on. */
export async function withWalletCredits(trx: Transaction, request: InvoiceWalletRequest): Promise<DraftInvoiceLine[]> {
  // Each charge names its line: the draw records what each grant paid of it (re-rating gives back by line).
  const charges = walletPayableLineCharges(request.lines, request.currency, keptAfterDiscounts(request.lines), request.thresholdBilled);
  if (charges.length === 0) return [...request.lines];
  const applied = await applyWalletCredits(trx, {
    customerId: request.customerId,
    currency: request.currency,
    drawKey: request.drawKey,
    charges,
    during: { from: new Date(request.usagePeriod.start), to: new Date(request.usagePeriod.end) },
    description: `usage ${request.usagePeriod.start.slice(0, 10)} to ${request.usagePeriod.end.slice(0, 10)}`,
    // The usage before an expiry is discounted as the invoice's is (its lines carry no discount line of their own).
    ...(request.linesBefore ? { accruedBefore: accruedBefore(request.linesBefore, request.currency, keptAfterDiscounts(request.lines), request.thresholdBilled) } : {}),
  });
  return [...request.lines, ...creditsAppliedLines(applied, request.currency, request.usagePeriod)];
}

/** What the wallet could have paid of the usage before a moment: the same payable rule over that usage's lines. */
function accruedBefore(linesBefore: (at: Date) => Promise<readonly DraftInvoiceLine[]>, currency: string, kept: Dec, thresholdBilled?: ThresholdBilledByLine) {
  return async (at: Date): Promise<string> => {
    const payable = walletPayableCharges(await linesBefore(at), currency, kept, thresholdBilled);
    return formatMoney(sumMoney(payable.map((charge) => toDecimal(charge.amount))), currency);
  };
}

/**
 * The usage lines of a closed usage period counting only the events before `at`, rated as the invoice rates
 * (same charges, the credit bucket covering the earliest usage first) but without the commitment true-up, which is
 * not usage. What a grant expiring at `at` may pay is the wallet's share of these lines.
 */
export function closedUsageLinesBefore(trx: Transaction, subscriptionId: string, plan: PlanRow, usagePeriod: PeriodBounds) {
  return async (at: Date): Promise<DraftInvoiceLine[]> => {
    const closure = await findUsageClosure(trx, subscriptionId, new Date(usagePeriod.start));
    if (!closure) return [];
    const charges = usageCharges(plan.charges as Charge[]);
    const usage = await usageForCharges(trx, charges, { kind: 'claimed', closeId: String(closure.id), before: at }, plan.currency);
    const terms = stretchUsageTerms(plan, await closureAllowanceShare(trx, String(closure.id)));
    const rated = rateDimensionalUsage({ currency: plan.currency, charges, usage, ...terms });
    // What the stretch's threshold invoices billed covers its earliest usage, as on the invoice itself (they billed
    // the usage accrued up to their instant, so at least all of it before `at` when rated later). Left out, the cap
    // let a grant expiring mid-period pay the usage after its expiry in place of usage already paid in cash.
    const thresholdCredits = await thresholdCreditsFor(trx, subscriptionId, usagePeriod, plan.currency);
    return [...ratedLinesForPeriod(rated.lines, { start: usagePeriod.start, end: at.toISOString() }), ...thresholdCredits];
  };
}
