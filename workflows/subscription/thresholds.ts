/**
 * Progressive billing (docs/pricing.md): when the open usage reaches one of the plan's usage thresholds, a
 * threshold invoice bills what accrued so far and is collected like any invoice (charge, dunning on a decline);
 * the invoice that closes the usage stretch then bills only the rest.
 *
 *   API: ingestion commits -> rated open usage >= next threshold? -> signal usageThresholdReached (a hint)
 *   workflow main loop: createThresholdInvoice (re-checks in Postgres; null on a stale or repeated hint)
 *                       -> charge it (a regular activity, retried until it answers) -> dunning if declined
 *
 * Exactly once per (subscription, stretch start, threshold index): the invoice's unique key. A stretch is the
 * period, or what is left of it after an immediate plan change (the new plan's thresholds count from zero).
 */
import { condition, setHandler } from '@temporalio/workflow';
import { local } from '../activity-stubs';
import { usageThresholdReachedSignal } from '../definitions';
import { withAttention } from './attention';
import { collect } from './collection';
import { PAUSE_WAITS_FOR_THRESHOLD_CHARGE, PROGRESSIVE_BILLING } from './patch-ids';
import { note, patchTaken, periodOf, SubscriptionRun } from './state';

export function handleThresholdSignals(run: SubscriptionRun): void {
  setHandler(usageThresholdReachedSignal, () => {
    run.thresholdCheckDue = true; // the main loop asks for the invoice between handlers
  });
}

/** The main loop's step after a threshold signal: a threshold invoice if one is due, then its collection. */
export async function checkThresholds(run: SubscriptionRun): Promise<void> {
  run.thresholdCheckDue = false;
  if (!patchTaken(run, PROGRESSIVE_BILLING)) return;
  const due = await betweenLifecycleUpdates(run, async () => {
    // Read inside the turn: an immediate plan change before it has closed the stretch and started a new one.
    // Rated no further than the period's end: a check that waited past it (dunning held the period end, or the
    // worker was behind) billed the next period's events on this one, and this period's invoice came out negative.
    const at = Math.min(Date.now(), periodOf(run).end.getTime());
    const request = { subscriptionId: run.input.subscriptionId, usageStart: run.usageOpenSince.toISOString(), at: new Date(at).toISOString(), planId: run.usagePlanId };
    const written = await withAttention(run, 'create_threshold_invoice', () => local.createThresholdInvoice(request));
    // Set before the turn is handed on, so a pause next in line already sees the charge coming (`afterThresholdCharge`).
    run.thresholdCharging = written.invoice !== null;
    return written;
  });
  if (!due.invoice) return;
  note(run, 'usage_threshold_reached', `threshold ${due.thresholdIndex} (${due.threshold} ${due.invoice.currency})`);
  try {
    await collect(run, due.invoice);
  } finally {
    run.thresholdCharging = false;
  }
}

/**
 * A pause whose turn comes while a threshold invoice's first charge runs waits for the charge's answer. The charge
 * holds no turn, yet its decline makes the subscription past_due: a pause judged beside it was answered "paused",
 * then overwritten by past_due and, once dunning was paid, by active; no period end moved and the paused time was
 * billed. Judged after the charge, a pause is refused while past due (as a moment later) and taken after a success.
 * Only the pause waits: a cancellation now must not slip past the period's end behind a slow charge.
 */
export async function afterThresholdCharge(run: SubscriptionRun): Promise<void> {
  if (run.thresholdCharging && patchTaken(run, PAUSE_WAITS_FOR_THRESHOLD_CHARGE)) await condition(() => !run.thresholdCharging);
}

/**
 * Runs `action` in its own turn among the lifecycle updates (./turns.ts): an immediate plan change closes the stretch
 * and credits its threshold invoices on the proration invoice, so a threshold invoice of that stretch must be
 * written before the change starts, or not at all. Only the invoice takes a turn; its charge does not hold one (a
 * pause waits for its answer all the same: `afterThresholdCharge`).
 */
async function betweenLifecycleUpdates<T>(run: SubscriptionRun, action: () => Promise<T>): Promise<T> {
  const ticket = run.turns.issued;
  run.turns.issued += 1;
  await condition(() => run.turns.serving === ticket);
  try {
    return await action();
  } finally {
    run.turns.serving += 1;
  }
}
