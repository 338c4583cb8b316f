/**
 * The period's opening in one local activity (`openBillingPeriod`: usage close, period invoice, first charge)
 * instead of three, each an activation of the workflow and a marker in its history. Behind a patch, taken once per
 * subscription (./state.ts `patchTaken`): histories recorded before replay the three local activities.
 */
import type { PeriodInvoiceRequest } from '../../contract/invoicing';
import type { PeriodBounds } from '../../domain/invoice';
import { local } from '../activity-stubs';
import { collect } from './collection';
import { deterministicFailureOf } from './deterministic';
import { PERIOD_OPENS_IN_ONE_STEP } from './patch-ids';
import { note, patchTaken, SubscriptionRun } from './state';

export { PERIOD_OPENS_IN_ONE_STEP };

export function takesOneStepOpening(run: SubscriptionRun): boolean {
  return patchTaken(run, PERIOD_OPENS_IN_ONE_STEP);
}

/**
 * Closes `usagePeriod` (when there is one), writes the invoice and charges it, then records what happened as the
 * step-by-step path does (timeline, last invoice, dunning on a decline). False when a step failed deterministically:
 * the caller then runs the steps one by one, and the failing one waits for ops under its own name.
 */
export async function openInOneStep(run: SubscriptionRun, usagePeriod: PeriodBounds | null, usagePlanId: string, invoice: PeriodInvoiceRequest): Promise<boolean> {
  const closeUsage = usagePeriod && { subscriptionId: run.input.subscriptionId, periodStart: usagePeriod.start, periodEnd: usagePeriod.end, planId: usagePlanId };
  let opened;
  try {
    opened = await local.openBillingPeriod({ closeUsage, invoice });
  } catch (error) {
    if (deterministicFailureOf(error)) return false;
    throw error;
  }
  if (opened.usageClosed) note(run, 'usage_closed', `${opened.usageClosed.eventCount} events`);
  const { payment } = opened;
  // collect() skips the charge for a credit total, as the activity did; otherwise it takes the charge made.
  await collect(run, opened.invoice, () => (payment ? Promise.resolve(payment) : Promise.reject(new Error('openBillingPeriod did not charge a chargeable invoice'))));
  return true;
}
