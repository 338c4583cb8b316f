/**
 * The janitor: a scheduled reconciliation run (workflows/janitor.ts) that looks for billing that stalled without
 * anyone noticing, repairs what is safe to repair and records the rest as findings (docs/operations.md, "Janitor").
 */

/** The Temporal Schedule that starts the janitor, and the workflow id prefix of its runs. */
export const JANITOR_SCHEDULE_ID = 'billing-janitor';
export const JANITOR_WORKFLOW_TYPE = 'reconciliationWorkflow';

/**
 * - `unknown_payment`: a payment pending for longer than the margin (its gateway answer was lost); repaired by
 *   looking the charge up by its idempotency key.
 * - `uncollected_invoice`: an open invoice nobody is collecting; repaired by one charge attempt when it was never
 *   attempted, only flagged when earlier attempts were declined and no dunning is in flight.
 * - `period_not_closed`: a subscription whose period ended more than grace + margin ago with no next period invoice.
 * - `needs_attention`: a subscription whose workflow stopped on a failure it cannot retry by itself.
 * - `reversal_credit_owed`: a reversal of an invoiced outcome on an ended subscription whose credit note was not
 *   issued when the reversal was stored (the API died, or the credit failed); repaired by issuing it.
 * - `unrefunded_credit`: an open invoice whose total is negative (money owed to the customer) that no refund pays
 *   back; repaired by refunding it, reported while no paid invoice of its subscription covers it. Also a paid
 *   invoice (the subject) whose credit notes credit more than its charge took off and its payment refunded (several
 *   reversal notes worth more than the invoice): the rest is owed to the customer; reported only.
 * - `rerate_not_carried_out`: a re-rating (the subject) that ended `failed`, or whose row still says computing,
 *   proposed or approved while its workflow is gone (terminated, failed before failures were recorded on the row,
 *   never started), and that no later re-rating of its invoice replaced; reported only.
 */
export const FINDING_KINDS = [
  'unknown_payment',
  'uncollected_invoice',
  'period_not_closed',
  'needs_attention',
  'reversal_credit_owed',
  'unrefunded_credit',
  'rerate_not_carried_out',
] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export interface ReconciliationFinding {
  readonly kind: FindingKind;
  readonly subjectType: 'payment' | 'invoice' | 'subscription' | 'rerate';
  readonly subjectId: string;
  /** What was found, and what the janitor did about it, for a human. */
  readonly detail: string;
  /** True when the janitor fixed it in this run: the finding is recorded resolved at once. */
  readonly repaired: boolean;
}

/** How old a condition must be before the janitor acts on it, in milliseconds (0 in tests). */
export interface ReconciliationMargins {
  /** A payment pending this long has lost its answer (a charge call takes seconds). Default 15 minutes. */
  readonly pendingPaymentMs: number;
  /** An open invoice with no attempt this long after finalization is not being collected. Default 1 hour. */
  readonly uncollectedInvoiceMs: number;
  /** Beyond the period's end plus the plan's usage grace window. Default 1 hour. */
  readonly periodCloseMs: number;
  /** A reversal stored this long ago without its credit note (ingestion issues it at once). Default 15 minutes. */
  readonly reversalCreditMs?: number;
  /** A re-rating requested this long ago whose row is still in a step is looked up in Temporal. Default 15 minutes. */
  readonly rerateWorkflowMs?: number;
}

export const DEFAULT_RECONCILIATION_MARGINS: ReconciliationMargins = {
  pendingPaymentMs: 15 * 60_000,
  uncollectedInvoiceMs: 60 * 60_000,
  periodCloseMs: 60 * 60_000,
  reversalCreditMs: 15 * 60_000,
  rerateWorkflowMs: 15 * 60_000,
};

/** The janitor workflow's input (the schedule's action passes it); anything omitted takes the default. */
export interface ReconciliationInput {
  readonly margins?: Partial<ReconciliationMargins>;
}

export interface ReconciliationScanRequest {
  /** The instant the run judges ages by (the workflow's clock, so a replay sees the same). */
  readonly asOf: string;
  readonly margins: ReconciliationMargins;
}

export interface UnknownPayment {
  readonly paymentId: string;
  readonly invoiceId: string;
  readonly attempt: number;
}

export interface UncollectedInvoice {
  readonly invoiceId: string;
  /** The attempt number the janitor's charge uses: one past the last attempt (1 when none was made). */
  readonly attempt: number;
}

/** An ended subscription with reversals of invoiced outcomes that no credit note carries yet. */
export interface OwedReversalCredit {
  readonly subscriptionId: string;
  readonly customerId: string;
}

export interface ReconciliationScan {
  readonly unknownPayments: readonly UnknownPayment[];
  readonly uncollectedInvoices: readonly UncollectedInvoice[];
  /** Absent in scans recorded before this repair existed (a replayed run then repairs nothing of it). */
  readonly owedReversalCredits?: readonly OwedReversalCredit[];
  /** Conditions the janitor only reports. */
  readonly flagged: readonly ReconciliationFinding[];
  /** Kinds whose scan saw every candidate (not cut at the per-run limit): their open findings not seen are resolved. */
  readonly completeKinds: readonly FindingKind[];
}

export interface RecordFindingsRequest {
  readonly asOf: string;
  readonly findings: readonly ReconciliationFinding[];
  readonly completeKinds: readonly FindingKind[];
}

export interface RecordFindingsResult {
  /** Findings first seen in this run. */
  readonly opened: number;
  /** Open findings seen again. */
  readonly stillOpen: number;
  readonly repaired: number;
  /** Open findings whose condition is gone. */
  readonly resolved: number;
}

export interface ReconciliationReport extends RecordFindingsResult {
  readonly asOf: string;
  readonly scanned: { readonly unknownPayments: number; readonly uncollectedInvoices: number; readonly owedReversalCredits?: number; readonly flagged: number };
}
