/** Requests to write invoices; each answers with the finalized invoice's summary. */
import type { PeriodBounds } from '../domain/invoice';

export interface PeriodInvoiceRequest {
  readonly subscriptionId: string;
  readonly kind: 'period' | 'closing';
  readonly flatFeePeriod: PeriodBounds | null;
  /** The plan version whose flat fees open the period (defaults to the subscription's current plan). */
  readonly flatFeePlanId?: string;
  /** Must have been closed by closeUsagePeriod first. */
  readonly usagePeriod: PeriodBounds | null;
  /** The plan version the usage is rated under (defaults to the subscription's current plan). */
  readonly usagePlanId?: string;
  /** A retention discount on this invoice, e.g. "30". */
  readonly discountPercentOff?: string | null;
  /** Closing early: credit the unused part of this period's flat fee from `from`. */
  readonly unusedFeeCredit?: { readonly period: PeriodBounds; readonly from: string } | null;
}

export interface ProrationInvoiceRequest {
  readonly subscriptionId: string;
  readonly period: PeriodBounds;
  readonly changeAt: string;
  readonly oldPlanId: string;
  readonly newPlanId: string;
  /** Usage up to the change, closed under the old plan (rated at its prices), if the old plan meters usage. */
  readonly usagePeriod: PeriodBounds | null;
  /**
   * The retention discount (percent off) the period's own invoice gives its fee, for a change made before that
   * invoice is written (in the usage grace window after the boundary: it is written when the window ends). Absent in
   * older histories.
   */
  readonly unwrittenFeeDiscount?: string | null;
}
