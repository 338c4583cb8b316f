/**
 * The period step and the usage it bills:
 *
 *   period n-1               | period n
 *   .........................|--grace--|..............................|
 *                            ^         ^ close usage of n-1, then ONE invoice: flat fees of n (in advance)
 *                            |           + usage of n-1 (in arrears), charged at once; dunning if declined
 *                            continue-as-new starts the run for n
 */
import { sleep, workflowInfo } from '@temporalio/workflow';
import type { PeriodInvoiceRequest } from '../../contract/invoicing';
import type { PeriodBounds } from '../../domain/invoice';
import { addIntervals, parseInterval } from '../../domain/periods';
import { local, remote } from '../activity-stubs';
import { SEARCH_ATTRIBUTES } from '../definitions';
import { withAttention } from './attention';
import { collect } from './collection';
import { bounds, msUntil, note, nowIso, patchTaken, periodOf, periodOnCalendar, planMeters, restartCalendar, SubscriptionRun, takesCheaperPeriodStep } from './state';
import { CLOSED_PERIOD_KEEPS_ITS_GRACE, NEW_INTERVAL_RESTARTS_CALENDAR, STRETCH_OPENED_BEFORE_STATUS } from './patch-ids';
import { openInOneStep, takesOneStepOpening } from './period-opening';
import { changeStatus, showPeriodEnd, switchPlan } from './transitions';
import { afterRunningHandlers, handlersMayBeRunning } from './turns';

/**
 * Closes the usage of a stretch under the plan version it is rated by, and returns the stretch to invoice (null
 * when that plan meters nothing or the stretch is empty). At a period boundary it first waits out the grace window
 * (`gracePeriod`: the run's plan's, or the closed stretch's plan's when a scheduled change just replaced it), so
 * late-but-timely events still count; a stretch cut short by a plan change closes at once.
 */
export async function closeUsage(
  run: SubscriptionRun,
  stretch: PeriodBounds,
  planId: string,
  grace: 'wait_for_grace' | 'now',
  gracePeriod: string = run.plan.usageGracePeriod,
): Promise<PeriodBounds | null> {
  if (!(await waitToCloseUsage(run, stretch, planId, grace, gracePeriod))) return null;
  const closed = await local.closeUsagePeriod({ subscriptionId: run.input.subscriptionId, periodStart: stretch.start, periodEnd: stretch.end, planId });
  note(run, 'usage_closed', `${closed.eventCount} events`);
  return stretch;
}

/** closeUsage without the close itself: the stretch to close (null when none), once its grace window is over. */
export async function waitToCloseUsage(
  run: SubscriptionRun,
  stretch: PeriodBounds,
  planId: string,
  grace: 'wait_for_grace' | 'now',
  gracePeriod: string = run.plan.usageGracePeriod,
): Promise<PeriodBounds | null> {
  if (!planMeters(run, planId) || stretch.start >= stretch.end) return null;
  if (grace === 'wait_for_grace') {
    const closesAt = addIntervals(new Date(stretch.end), parseInterval(gracePeriod), 1);
    if (closesAt.getTime() > Date.now()) await sleep(msUntil(closesAt), { summary: `grace window for period ${run.periodIndex} usage` });
    if (handlersMayBeRunning(run)) await afterRunningHandlers(run); // the main loop's own wait (a handler's close uses 'now')
  }
  return stretch;
}

/** The usage still open, from where it was last closed up to `end`. */
export function openUsageUntil(run: SubscriptionRun, end: Date | string): PeriodBounds {
  return { start: run.usageOpenSince.toISOString(), end: typeof end === 'string' ? end : end.toISOString() };
}

/** Sets the period this run bills (moved later by paused time) and shows its end to ops. */
export function placePeriod(run: SubscriptionRun): void {
  run.currentPeriod = periodOnCalendar(run, run.interval, run.periodIndex);
}

/** Upserts the period end only when the search attribute does not show it yet (a carried run usually does). */
function showPeriodEndIfChanged(run: SubscriptionRun): void {
  const shown = workflowInfo().typedSearchAttributes.get(SEARCH_ATTRIBUTES.periodEnd);
  if (shown?.getTime() !== periodOf(run).end.getTime()) showPeriodEnd(run);
}

/**
 * Opens the run's period: applies a scheduled plan change that is due, closes the previous period's usage after
 * its grace window, and issues one invoice (this period's fees in advance, that usage in arrears), collected at once.
 */
export async function openPeriod(run: SubscriptionRun): Promise<void> {
  run.openingPeriod = true;
  try {
    await openPeriodSteps(run);
  } finally {
    run.openingPeriod = false;
  }
}

async function openPeriodSteps(run: SubscriptionRun): Promise<void> {
  const cheaper = takesCheaperPeriodStep(run);
  // Asked before a new interval restarts the count at 0: only the subscription's first period has no usage before it.
  const firstPeriod = run.periodIndex === 0;
  let period = periodOf(run);
  // Opened before the status record when patched: the status reads `active` as soon as it is set, and an immediate
  // change admitted during that await closed [period start, change) and switched plans; the stretch opened after it
  // went back to the period's start (that usage billed twice, the usage after the change never) and the period
  // invoice took the new plan's whole fee beside the proration. A later period opens its stretch first already.
  const statusLater = run.status !== 'active' && patchTaken(run, STRETCH_OPENED_BEFORE_STATUS);
  if (run.status !== 'active' && !statusLater) await changeStatus(run, 'active');
  const usagePlan = run.usagePlanId;
  // The grace window promised with the plan the closed period's usage is rated under (a scheduled change switches below).
  const usageGrace = run.plan.usageGracePeriod;
  const change = run.scheduledChange;
  if (change && new Date(change.effectiveAt) <= period.start) {
    const interval = run.plan.billingInterval;
    await withAttention(run, 'apply_plan_change', () => switchPlan(run, change.plan, { effective: 'period_end', at: period.start.toISOString(), requestedBy: change.requestedBy }));
    // This period is the new plan's first: it lasts the new interval, and so do the ones after it.
    if (run.plan.billingInterval !== interval && patchTaken(run, NEW_INTERVAL_RESTARTS_CALENDAR)) {
      restartCalendar(run);
      period = periodOf(run);
    }
  }
  if (cheaper) showPeriodEndIfChanged(run);
  else showPeriodEnd(run);

  // The closed period's usage belongs to this invoice, rated under the plan in force then, and the fee is the one
  // in force at the period's start. The new period's usage is open from here on, before the grace wait: a plan
  // change inside the grace window prorates only [period start, change) and never takes the closed period's usage.
  const closedStretch = openUsageUntil(run, period.start);
  const flatFeePlanId = run.plan.planId;
  run.usageOpenSince = period.start;
  run.usagePlanId = run.plan.planId;
  if (statusLater) await changeStatus(run, 'active');
  // Usage sent on time under the old plan's window: waiting the new plan's shorter one left it unbilled (late).
  const closedGrace = usageGrace !== run.plan.usageGracePeriod && patchTaken(run, CLOSED_PERIOD_KEEPS_ITS_GRACE) ? usageGrace : run.plan.usageGracePeriod;
  // One local activity for close + invoice + first charge (./period-opening.ts); the usage is closed inside it.
  const oneStep = cheaper && takesOneStepOpening(run);
  const usagePeriod =
    firstPeriod
      ? null
      : oneStep
        ? await waitToCloseUsage(run, closedStretch, usagePlan, 'wait_for_grace', closedGrace) // only the wait: no activity that could fail
        : await withAttention(run, 'close_usage', () => closeUsage(run, closedStretch, usagePlan, 'wait_for_grace', closedGrace));
  const discount = run.discount;
  const request: PeriodInvoiceRequest = {
    subscriptionId: run.input.subscriptionId,
    kind: 'period',
    flatFeePeriod: bounds(period),
    flatFeePlanId,
    usagePeriod,
    usagePlanId: usagePlan,
    discountPercentOff: discount && discount.periodsLeft > 0 ? discount.percentOff : null,
  };
  if (discount) run.discount = discount.periodsLeft > 1 ? { ...discount, periodsLeft: discount.periodsLeft - 1 } : null;
  if (oneStep) {
    if (await openInOneStep(run, usagePeriod, usagePlan, request)) return;
    // A step failed deterministically: the same steps one by one (each finds what already committed), so the
    // failing one waits in needs_attention under its own name.
    if (usagePeriod) await withAttention(run, 'close_usage', () => closeUsage(run, usagePeriod, usagePlan, 'now'));
  }
  const invoice = await withAttention(run, 'create_period_invoice', () => local.createPeriodInvoice(request));
  // The first charge is idempotent per (invoice, attempt) and short: a local activity buys the same retries without
  // a round trip through the server. Dunning's later attempts stay regular activities, each a visible step.
  await collect(run, invoice, cheaper ? local.chargeInvoice : remote.chargeInvoice);
}

/** After a usage summary: rates the usage so far and notes any spending threshold crossed or cap reached. */
export async function checkSpending(run: SubscriptionRun): Promise<void> {
  run.spendingCheckDue = false;
  const request = {
    subscriptionId: run.input.subscriptionId,
    from: run.usageOpenSince.toISOString(),
    at: nowIso(),
    periodEnd: periodOf(run).end.toISOString(),
  };
  const spending = await withAttention(run, 'check_spending', () => local.checkSpending(request));
  for (const alert of spending.raised) note(run, 'spending_alert', `${alert} at ${spending.spend}`);
  if (spending.capped) note(run, 'usage_capped', spending.spend);
}
