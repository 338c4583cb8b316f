/**
 * Progressive billing (docs/pricing.md): the invoice that closes a usage stretch (period, closing or proration)
 * rates all of its usage as before, then takes back what the stretch's threshold invoices billed, one line each.
 */
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';
import { thresholdCreditLines } from '../domain/progressive-billing';
import type { ThresholdBilledByLine } from '../domain/wallet-invoice';
import { billedThresholds, listThresholdInvoices, thresholdBilledUsage } from '../store/threshold-invoices';
import type { Transaction } from '../store/transactions';

export async function thresholdCreditsFor(trx: Transaction, subscriptionId: string, usagePeriod: PeriodBounds, currency: string): Promise<DraftInvoiceLine[]> {
  const billed = billedThresholds(await listThresholdInvoices(trx, subscriptionId, usagePeriod.start));
  return thresholdCreditLines(billed, currency, usagePeriod);
}

/**
 * The credit lines, and what those threshold invoices billed of each usage line for the wallet's draw
 * (walletPayableCharges); the lines of the latest one are read only when there is one.
 */
export async function thresholdCoverFor(
  trx: Transaction,
  subscriptionId: string,
  usagePeriod: PeriodBounds,
  currency: string,
): Promise<{ credits: DraftInvoiceLine[]; billedByLine: ThresholdBilledByLine }> {
  const billed = billedThresholds(await listThresholdInvoices(trx, subscriptionId, usagePeriod.start));
  return { credits: thresholdCreditLines(billed, currency, usagePeriod), billedByLine: billed.length ? await thresholdBilledUsage(trx, billed, currency) : {} };
}
