/**
 * One long-running workflow per subscription (id `subscription:<id>`). It decides *when* things happen:
 * start, trial, each billing period, usage close, invoicing, collection, cancellation. Activities do the I/O;
 * domain/ computes the numbers.
 *
 * One run covers one billing period and ends with continue-as-new at the boundary, so history stays small
 * and a workflow code change reaches every subscription within one period.
 *
 *   period n-1          | period n
 *   ....................|--grace--|.........................|
 *                       ^         ^ close usage of n-1, then ONE invoice: flat fees of n (in advance)
 *                       |           + usage of n-1 (in arrears), charged at once
 *                       continue-as-new starts the run for n
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { BillingActivities } from '../activities';
import type { PeriodInvoiceRequest } from '../activities/invoicing';
import type { PeriodBounds } from '../domain/invoice';
import { addIntervals, billingPeriod, BillingPeriod, parseInterval } from '../domain/periods';
import {
  CancelRequest,
  CancelResult,
  cancelSubscriptionUpdate,
  CarriedState,
  PeriodInvoiceSummary,
  SEARCH_ATTRIBUTES,
  SubscriptionState,
  SubscriptionStatus,
  subscriptionStateQuery,
  SubscriptionWorkflowInput,
  TimelineEntry,
  usageRecordedSignal,
} from './definitions';

const RETRY = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' } as const;

// Short, idempotent Postgres transactions run as local activities: one marker event each instead of three
// events plus a workflow task, which keeps a period's history within its budget (about 25 events).
const { createPeriodInvoice, recordSubscriptionStatus, closeUsagePeriod } = proxyLocalActivities<BillingActivities>({
  startToCloseTimeout: '30 seconds',
  retry: RETRY,
});

// Collection talks to a payment gateway (slow, may lose responses): a regular activity, its own visible step.
const { chargeInvoice } = proxyActivities<BillingActivities>({ startToCloseTimeout: '1 minute', retry: RETRY });

/** Kept in the query result and carried across runs; bounded so continue-as-new input stays small. */
const TIMELINE_LIMIT = 50;

const bounds = (period: { start: Date; end: Date }): PeriodBounds => ({
  start: period.start.toISOString(),
  end: period.end.toISOString(),
});

export async function subscriptionWorkflow(input: SubscriptionWorkflowInput): Promise<SubscriptionState> {
  const { plan } = input;
  const interval = parseInterval(plan.billingInterval);
  const grace = parseInterval(plan.usageGracePeriod);
  const startAt = new Date(input.startAt);
  const trialEnd = plan.trialPeriod ? addIntervals(startAt, parseInterval(plan.trialPeriod), 1) : null;

  let status: SubscriptionStatus = input.carried?.status ?? 'scheduled';
  const periodIndex = input.carried?.periodIndex ?? 0;
  let pendingCancellation: CancelRequest | null = input.carried?.pendingCancellation ?? null;
  let cancelNow: CancelRequest | null = null;
  let currentPeriod: BillingPeriod | null = null;
  let lastInvoice: PeriodInvoiceSummary | null = null;
  let usageEventsReported = 0;
  const timeline: TimelineEntry[] = [...(input.carried?.timeline ?? [])];

  const note = (event: string, detail?: string): void => {
    timeline.push({ at: new Date().toISOString(), event, ...(detail ? { detail } : {}) });
    if (timeline.length > TIMELINE_LIMIT) timeline.splice(0, timeline.length - TIMELINE_LIMIT);
  };

  /** Moves to a new status: Postgres first (the API reads it), then the search attributes ops filter on. */
  const changeStatus = async (next: SubscriptionStatus, reason?: string): Promise<void> => {
    if (next === status) return;
    status = next;
    note(`status:${next}`, reason);
    await recordSubscriptionStatus({
      subscriptionId: input.subscriptionId,
      status: next,
      at: new Date().toISOString(),
      reason: reason ?? null,
      trialEnd: trialEnd?.toISOString() ?? null,
    });
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.status, value: next },
      { key: SEARCH_ATTRIBUTES.pastDue, value: next === 'past_due' },
    ]);
  };

  const snapshot = (): SubscriptionState => ({
    subscriptionId: input.subscriptionId,
    customerId: input.customerId,
    planCode: plan.planCode,
    status,
    trialEnd: trialEnd?.toISOString() ?? null,
    currentPeriod: currentPeriod && { index: currentPeriod.index, ...bounds(currentPeriod) },
    pendingCancellation,
    lastInvoice,
    usageEventsReported,
    timeline: [...timeline],
  });
  setHandler(subscriptionStateQuery, snapshot);

  setHandler(usageRecordedSignal, (summary) => {
    usageEventsReported += summary.eventCount;
  });

  setHandler(
    cancelSubscriptionUpdate,
    async (request: CancelRequest): Promise<CancelResult> => {
      // Before the first paid period there is nothing to bill: any cancellation ends it now, with no invoice.
      if (request.at === 'now' || status === 'scheduled' || status === 'trialing') {
        cancelNow = request;
        note('cancel_requested', `now: ${request.reason}`);
        return { status: 'canceled', effectiveAt: new Date().toISOString() };
      }
      pendingCancellation = request;
      note('cancel_requested', `period_end: ${request.reason}`);
      await changeStatus('pending_cancellation', request.reason);
      return { status: 'pending_cancellation', effectiveAt: currentPeriod!.end.toISOString() };
    },
    {
      validator: (request: CancelRequest) => {
        if (status === 'canceled' || cancelNow) throw new Error('subscription_already_canceled');
        if (request.at !== 'now' && request.at !== 'period_end') throw new Error('invalid_cancel_timing');
      },
    },
  );

  /** Invoices and collects at once; a decline makes the subscription past due (dunning follows). */
  const invoiceAndCollect = async (request: PeriodInvoiceRequest): Promise<void> => {
    lastInvoice = await createPeriodInvoice(request);
    note('invoice_finalized', `${lastInvoice.number} ${lastInvoice.total} ${lastInvoice.currency}`);
    const payment = await chargeInvoice({ invoiceId: lastInvoice.invoiceId, attempt: 1 });
    lastInvoice = { ...lastInvoice, status: payment.invoiceStatus };
    note(payment.outcome === 'succeeded' ? 'payment_succeeded' : 'payment_failed', payment.detail ?? undefined);
    if (payment.outcome !== 'succeeded') await changeStatus('past_due', payment.detail ?? 'payment failed');
    else if (status === 'past_due') await changeStatus('active');
  };

  /** Usage of a period is closed once its grace window has passed, so late-but-timely events still count. */
  const closeUsage = async (period: PeriodBounds): Promise<PeriodBounds | null> => {
    if (!plan.hasUsageCharges) return null;
    const closesAt = addIntervals(new Date(period.end), grace, 1).getTime();
    if (closesAt > Date.now()) await sleep(closesAt - Date.now());
    const closed = await closeUsagePeriod({ subscriptionId: input.subscriptionId, periodStart: period.start, periodEnd: period.end });
    note('usage_closed', `${closed.eventCount} events`);
    return period;
  };

  /** The end of the subscription: the last period's usage is still invoiced, then it is canceled. */
  const endSubscription = async (request: CancelRequest, lastUsage: PeriodBounds | null): Promise<SubscriptionState> => {
    if (lastUsage && plan.hasUsageCharges) {
      const usagePeriod = await closeUsage(lastUsage);
      await invoiceAndCollect({ subscriptionId: input.subscriptionId, kind: 'closing', flatFeePeriod: null, usagePeriod });
    }
    await changeStatus('canceled', request.reason);
    await condition(allHandlersFinished);
    return snapshot();
  };

  let billingAnchor = input.carried ? new Date(input.carried.billingAnchor) : (trialEnd ?? startAt);
  if (!input.carried) {
    note('created');
    // Scheduled start: wait for it (a cancellation before it simply ends the subscription).
    if (startAt.getTime() > Date.now()) {
      await condition(() => cancelNow !== null, startAt.getTime() - Date.now());
      if (cancelNow) return endSubscription(cancelNow, null);
    }
    if (trialEnd) {
      await changeStatus('trialing');
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: trialEnd }]);
      await condition(() => cancelNow !== null, Math.max(0, trialEnd.getTime() - Date.now()));
      if (cancelNow) return endSubscription(cancelNow, null);
      note('trial_converted');
    }
    billingAnchor = trialEnd ?? startAt;
  }

  // --- Period n: close n-1's usage after its grace window, invoice (n's fees + n-1's usage), collect. ---
  const period = billingPeriod(billingAnchor, interval, periodIndex);
  currentPeriod = period;
  const previous = periodIndex > 0 ? billingPeriod(billingAnchor, interval, periodIndex - 1) : null;
  if (status === 'scheduled' || status === 'trialing') await changeStatus('active');
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: period.end }]);

  const usagePeriod = previous ? await closeUsage(bounds(previous)) : null;
  await invoiceAndCollect({ subscriptionId: input.subscriptionId, kind: 'period', flatFeePeriod: bounds(period), usagePeriod });

  // Wait for the boundary. A long-lived run (many updates) restarts itself in the same period: every step
  // above is idempotent, so the new run finds the invoice and payment already done.
  await condition(
    () => cancelNow !== null || workflowInfo().continueAsNewSuggested,
    Math.max(0, period.end.getTime() - Date.now()),
  );
  if (cancelNow) return endSubscription(cancelNow, { start: period.start.toISOString(), end: new Date().toISOString() });
  if (pendingCancellation && Date.now() >= period.end.getTime()) return endSubscription(pendingCancellation, bounds(period));

  // Period boundary (or a suggested restart): a fresh run. Never from inside a handler.
  await condition(allHandlersFinished);
  const carried: CarriedState = {
    status,
    billingAnchor: billingAnchor.toISOString(),
    periodIndex: Date.now() >= period.end.getTime() ? periodIndex + 1 : periodIndex,
    pendingCancellation,
    timeline,
  };
  return continueAsNew<typeof subscriptionWorkflow>({ ...input, carried });
}
