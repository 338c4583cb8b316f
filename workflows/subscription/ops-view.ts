/**
 * What ops read in the Temporal UI: the workflow's summary (customer, plan, status) and short names for its timers
 * and activities ("period 5 ends", "grace window for period 4 usage", "charge INV-000123"). A local activity
 * (the period's first charge, the short Postgres steps) takes no name in this SDK: the details say what it did.
 *
 * All of it is user metadata: it changes no command, so histories recorded without it replay unchanged. The
 * summary given at start stays on the first run only (continue-as-new carries none in this SDK), so every run also
 * sets its "current details", which the UI reads live from the workflow.
 */
import { setCurrentDetails } from '@temporalio/workflow';
import { subscriptionSummary } from '../definitions';
import type { SubscriptionRun } from './state';

/** Sets the run's current details from its state: call after anything that changes customer, plan, status or period. */
export function showOpsDetails(run: SubscriptionRun): void {
  const period = run.currentPeriod ? `period ${periodNumber(run)}: ${run.currentPeriod.start.toISOString()} → ${run.currentPeriod.end.toISOString()}` : 'no period open yet';
  setCurrentDetails(
    [
      `**${subscriptionSummary({ ...run.input, planCode: run.plan.planCode }, run.status)}**`,
      `subscription ${run.input.subscriptionId}, customer ${run.input.customerId}`,
      period,
      // The period's first charge runs as a local activity, which carries no name in the UI: the outcome shows here.
      ...(run.lastInvoice ? [`last invoice ${run.lastInvoice.number}: ${run.lastInvoice.total} ${run.lastInvoice.currency}, ${run.lastInvoice.status}`] : []),
      ...(run.unpaidInvoice ? [`unpaid ${run.unpaidInvoice.number}`] : []),
    ].join('\n\n'),
  );
}

/** The period ops count (1 for the first), as in "period 5 ends". */
export function periodNumber(run: SubscriptionRun): number {
  return run.periodIndex + 1;
}
