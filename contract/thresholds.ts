/** Progressive billing: the workflow asks for a threshold invoice; the activity decides whether one is due. */
import type { PeriodInvoiceSummary } from './subscription';

export interface ThresholdInvoiceRequest {
  readonly subscriptionId: string;
  /** The open usage stretch: from its start (the period's, or a plan change's instant) up to `at`. */
  readonly usageStart: string;
  readonly at: string;
  /** The plan version the stretch is rated under (its thresholds apply). */
  readonly planId: string;
}

/** The threshold invoice to collect, or null when none is due (a stale or repeated signal). */
export interface ThresholdInvoiceResult {
  readonly invoice: PeriodInvoiceSummary | null;
  /** The threshold the invoice is for (1-based) and its amount; null with no invoice. */
  readonly thresholdIndex: number | null;
  readonly threshold: string | null;
}
