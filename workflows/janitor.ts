/**
 * The janitor: one reconciliation run, started by the `billing-janitor` Temporal Schedule (worker/janitor-schedule.ts).
 *
 *   scan (as of the workflow's clock)
 *     -> each payment pending past the margin: look its charge up by key, settle it       (repair)
 *     -> each open invoice never attempted past the margin: one idempotent charge attempt (repair)
 *     -> periods past grace + margin without their next invoice, needs_attention          (flag only)
 *     -> re-ratings failed, or whose row is in a step while their workflow is gone        (flag only)
 *     -> reversals on ended subscriptions without their credit note: issue it              (repair)
 *   record findings (new, seen again, repaired, resolved)
 *
 * A repair that fails after its retries is recorded as an open finding; the run itself still finishes.
 */
import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { BillingActivities } from '../contract/activities';
import {
  DEFAULT_RECONCILIATION_MARGINS,
  ReconciliationFinding,
  ReconciliationInput,
  ReconciliationReport,
} from '../contract/janitor';

// Bounded retries: a repair that keeps failing is reported and tried again by the next scheduled run.
const janitor = proxyActivities<BillingActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
});

export async function reconciliationWorkflow(input: ReconciliationInput = {}): Promise<ReconciliationReport> {
  const asOf = new Date().toISOString();
  const margins = { ...DEFAULT_RECONCILIATION_MARGINS, ...input.margins };
  const scan = await janitor.scanForReconciliation({ asOf, margins });

  const findings: ReconciliationFinding[] = [...scan.flagged];
  for (const payment of scan.unknownPayments) {
    const finding = await repair(() => janitor.settleUnknownPayment(payment), {
      kind: 'unknown_payment',
      subjectType: 'payment',
      subjectId: payment.paymentId,
    });
    if (finding) findings.push(finding);
  }
  for (const invoice of scan.uncollectedInvoices) {
    const finding = await repair(() => janitor.collectUncollectedInvoice(invoice), {
      kind: 'uncollected_invoice',
      subjectType: 'invoice',
      subjectId: invoice.invoiceId,
    });
    if (finding) findings.push(finding);
  }
  for (const owed of scan.owedReversalCredits ?? []) {
    const finding = await repair(() => janitor.creditOwedReversals(owed), {
      kind: 'reversal_credit_owed',
      subjectType: 'subscription',
      subjectId: owed.subscriptionId,
    });
    if (finding) findings.push(finding);
  }

  const recorded = await janitor.recordReconciliationFindings({ asOf, findings, completeKinds: scan.completeKinds });
  return {
    asOf,
    scanned: {
      unknownPayments: scan.unknownPayments.length,
      uncollectedInvoices: scan.uncollectedInvoices.length,
      owedReversalCredits: scan.owedReversalCredits?.length ?? 0,
      flagged: scan.flagged.length,
    },
    ...recorded,
  };
}

/** Runs one repair; when it fails for good, the failure becomes an open finding instead of failing the run. */
async function repair(
  attempt: () => Promise<ReconciliationFinding | null>,
  subject: Pick<ReconciliationFinding, 'kind' | 'subjectType' | 'subjectId'>,
): Promise<ReconciliationFinding | null> {
  try {
    return await attempt();
  } catch (error) {
    if (!(error instanceof ActivityFailure)) throw error;
    const cause = error.cause instanceof ApplicationFailure ? `${error.cause.type ?? 'error'}: ${error.cause.message}` : (error.cause?.message ?? error.message);
    return { ...subject, detail: `repair failed: ${cause}`, repaired: false };
  }
}
