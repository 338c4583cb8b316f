/**
 * What ops read in the Temporal UI: the workflow's summary (customer, plan, status) and short names for its timers
 * and activities ("period 5 ends", "grace window for period 4 usage", "charge INV-000123").
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
      ...(run.unpaidInvoice ? [`unpaid ${run.unpaidInvoice.number}`] : []),
    ].join('\n\n'),
  );
}

/** The period ops count (1 for the first), as in "period 5 ends". */
export function periodNumber(run: SubscriptionRun): number {
  return run.periodIndex + 1;
}
