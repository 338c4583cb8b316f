/**
 * The workflow/activity contract: every activity by name with its request and result. Workflows proxy this
 * interface (`import type` only); activities/index.ts's factory is checked against it, so the two cannot drift.
 */
import type { PeriodInvoiceRequest, ProrationInvoiceRequest } from './invoicing';
import type {
  RecordFindingsRequest,
  RecordFindingsResult,
  ReconciliationFinding,
  ReconciliationScan,
  ReconciliationScanRequest,
  OwedReversalCredit,
  UncollectedInvoice,
  UnknownPayment,
} from './janitor';
import type {
  ChargeInvoiceRequest,
  ChargeInvoiceResult,
  MarkInvoiceUncollectibleRequest,
  MarkInvoiceUncollectibleResult,
  RefundCreditNoteRequest,
  RefundCreditNoteResult,
  RefundCreditTotalRequest,
  RefundCreditTotalResult,
} from './payments';
import type { OpenBillingPeriodRequest, OpenBillingPeriodResult } from './period-opening';
import type { RerateDecisionRecord, RerateFailureRecord, RerateRefundsResult, RerateRequest, RerateState } from './rerating';
import type {
  CustomerNotification,
  OfferAnswerRecord,
  OfferRecord,
  PeriodInvoiceSummary,
  PlanChangeIntentRecord,
  PlanChangeRecord,
  RecordedPlanChange,
  SubscriptionStatusChange,
} from './subscription';
import type { ThresholdInvoiceRequest, ThresholdInvoiceResult } from './thresholds';
import type { WalletActivities } from './wallet';
import type { SpendingCheckRequest, SpendingCheckResult, UsagePeriodRequest, UsagePeriodSummary } from './usage';

/** The wallet workflow's steps are declared in ./wallet and registered with the rest. */
export interface BillingActivities extends WalletActivities {
  // invoicing
  createPeriodInvoice(request: PeriodInvoiceRequest): Promise<PeriodInvoiceSummary>;
  createProrationInvoice(request: ProrationInvoiceRequest): Promise<PeriodInvoiceSummary>;
  /** closeUsagePeriod, createPeriodInvoice and the first chargeInvoice in one local activity (the period's opening). */
  openBillingPeriod(request: OpenBillingPeriodRequest): Promise<OpenBillingPeriodResult>;
  // collection
  chargeInvoice(request: ChargeInvoiceRequest): Promise<ChargeInvoiceResult>;
  markInvoiceUncollectible(request: MarkInvoiceUncollectibleRequest): Promise<MarkInvoiceUncollectibleResult>;
  refundCreditNote(request: RefundCreditNoteRequest): Promise<RefundCreditNoteResult>;
  refundCreditTotal(request: RefundCreditTotalRequest): Promise<RefundCreditTotalResult>;
  // subscription records and customer messages
  recordSubscriptionStatus(change: SubscriptionStatusChange): Promise<void>;
  recordUsageEnd(request: { subscriptionId: string; usageEndsAt: string }): Promise<void>;
  recordPlanChange(change: PlanChangeIntentRecord): Promise<RecordedPlanChange>;
  applyPlanChange(change: PlanChangeRecord): Promise<void>;
  /** `expiresAt`: the recorded offer's (the first one's, for an offer made again); absent in older histories. */
  makeCustomerOffer(offer: OfferRecord): Promise<{ offered: boolean; expiresAt?: string }>;
  recordOfferAnswer(answer: OfferAnswerRecord): Promise<void>;
  notifyCustomer(notification: CustomerNotification): Promise<void>;
  // usage
  closeUsagePeriod(request: UsagePeriodRequest): Promise<UsagePeriodSummary>;
  checkSpending(request: SpendingCheckRequest): Promise<SpendingCheckResult>;
  // progressive billing
  createThresholdInvoice(request: ThresholdInvoiceRequest): Promise<ThresholdInvoiceResult>;
  // re-rating
  proposeRerate(request: RerateRequest): Promise<RerateState>;
  recordRerateDecision(request: RerateDecisionRecord): Promise<RerateState>;
  finalizeRerate(request: RerateRequest): Promise<RerateState>;
  recordRerateFailure(failure: RerateFailureRecord): Promise<RerateState>;
  /** Every pending refund of the re-rating's credit notes, each under its own key (the first only, before). */
  refundRerateCreditNotes(request: RerateRequest): Promise<RerateRefundsResult>;
  // janitor (reconciliation)
  scanForReconciliation(request: ReconciliationScanRequest): Promise<ReconciliationScan>;
  settleUnknownPayment(request: UnknownPayment): Promise<ReconciliationFinding | null>;
  collectUncollectedInvoice(request: UncollectedInvoice): Promise<ReconciliationFinding | null>;
  creditOwedReversals(request: OwedReversalCredit): Promise<ReconciliationFinding | null>;
  recordReconciliationFindings(request: RecordFindingsRequest): Promise<RecordFindingsResult>;
}
