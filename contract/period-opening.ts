/** Opening a period in one local activity: the usage close, the period invoice and its first charge, in order. */
import type { PeriodInvoiceRequest } from './invoicing';
import type { ChargeInvoiceResult } from './payments';
import type { PeriodInvoiceSummary } from './subscription';
import type { UsagePeriodRequest, UsagePeriodSummary } from './usage';

export interface OpenBillingPeriodRequest {
  /** The closed period's usage to claim first; null when there is none to close (period 0, a plan metering nothing). */
  readonly closeUsage: UsagePeriodRequest | null;
  readonly invoice: PeriodInvoiceRequest;
}

export interface OpenBillingPeriodResult {
  readonly usageClosed: UsagePeriodSummary | null;
  readonly invoice: PeriodInvoiceSummary;
  /** The first charge (attempt 1); null when the invoice's total is a credit, which is never charged. */
  readonly payment: ChargeInvoiceResult | null;
}
