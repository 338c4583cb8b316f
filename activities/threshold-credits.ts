/**
 * Progressive billing (docs/pricing.md): the invoice that closes a usage stretch (period, closing or proration)
 * rates all of its usage as before, then takes back what the stretch's threshold invoices billed, one line each.
 */
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';
import { thresholdCreditLines } from '../domain/progressive-billing';
import { billedThresholds, listThresholdInvoices } from '../store/threshold-invoices';
import type { Transaction } from '../store/transactions';

export async function thresholdCreditsFor(trx: Transaction, subscriptionId: string, usagePeriod: PeriodBounds, currency: string): Promise<DraftInvoiceLine[]> {
  const billed = billedThresholds(await listThresholdInvoices(trx, subscriptionId, usagePeriod.start));
  return thresholdCreditLines(billed, currency, usagePeriod);
}
