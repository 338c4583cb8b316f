/**
 * One long-running workflow per subscription (id `subscription:<id>`). It decides *when* things happen:
 * start, trial, each billing period, cancellation. Activities do the I/O; domain/ computes the numbers.
 *
 * One run covers one billing period and ends with continue-as-new at the boundary, so history stays small
 * (about 20 events per period) and a workflow code change reaches every subscription within one period.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { BillingActivities } from '../activities';
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
} from './definitions';

const { createPeriodInvoice, chargeInvoice, recordSubscriptionStatus } = proxyActivities<BillingActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/** Kept in the query result and carried across runs; bounded so continue-as-new input stays small. */
const TIMELINE_LIMIT = 50;

export async function subscriptionWorkflow(input: SubscriptionWorkflowInput): Promise<SubscriptionState> {
  const interval = parseInterval(input.plan.billingInterval);
  const startAt = new Date(input.startAt);
  const trialEnd = input.plan.trialPeriod ? addIntervals(startAt, parseInterval(input.plan.trialPeriod), 1) : null;

  let status: SubscriptionStatus = input.carried?.status ?? 'scheduled';
  let billingAnchor = input.carried ? new Date(input.carried.billingAnchor) : (trialEnd ?? startAt);
  const periodIndex = input.carried?.periodIndex ?? 0;
  let pendingCancellation: CancelRequest | null = input.carried?.pendingCancellation ?? null;
  let cancelNow: CancelRequest | null = null;
  let currentPeriod: BillingPeriod | null = null;
  let lastInvoice: PeriodInvoiceSummary | null = null;
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
    planCode: input.plan.planCode,
    status,
    trialEnd: trialEnd?.toISOString() ?? null,
    currentPeriod: currentPeriod && {
      index: currentPeriod.index,
      start: currentPeriod.start.toISOString(),
      end: currentPeriod.end.toISOString(),
    },
    pendingCancellation,
    lastInvoice,
    timeline: [...timeline],
  });
  setHandler(subscriptionStateQuery, snapshot);

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

  const endSubscription = async (request: CancelRequest): Promise<SubscriptionState> => {
    await changeStatus('canceled', request.reason);
    await condition(allHandlersFinished);
    return snapshot();
  };

  if (!input.carried) {
    note('created');
    // Scheduled start: wait for it (a cancellation before it simply ends the subscription).
    if (startAt.getTime() > Date.now()) {
      await condition(() => cancelNow !== null, startAt.getTime() - Date.now());
      if (cancelNow) return endSubscription(cancelNow);
    }
    if (trialEnd) {
      await changeStatus('trialing');
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: trialEnd }]);
      await condition(() => cancelNow !== null, Math.max(0, trialEnd.getTime() - Date.now()));
      if (cancelNow) return endSubscription(cancelNow);
      note('trial_converted');
    }
    billingAnchor = trialEnd ?? startAt;
  }

  // --- One billing period: invoice the flat fee in advance, charge it, wait for the boundary. ---
  currentPeriod = billingPeriod(billingAnchor, interval, periodIndex);
  if (status === 'scheduled' || status === 'trialing') await changeStatus('active');
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: currentPeriod.end }]);

  lastInvoice = await createPeriodInvoice({
    subscriptionId: input.subscriptionId,
    periodIndex,
    periodStart: currentPeriod.start.toISOString(),
    periodEnd: currentPeriod.end.toISOString(),
  });
  note('invoice_finalized', `${lastInvoice.number} ${lastInvoice.total} ${lastInvoice.currency}`);

  const payment = await chargeInvoice({ invoiceId: lastInvoice.invoiceId, attempt: 1 });
  lastInvoice = { ...lastInvoice, status: payment.invoiceStatus };
  note(payment.outcome === 'succeeded' ? 'payment_succeeded' : 'payment_failed', payment.detail ?? undefined);
  if (payment.outcome !== 'succeeded') await changeStatus('past_due', payment.detail ?? 'payment failed');
  else if (status === 'past_due') await changeStatus('active');

  await condition(() => cancelNow !== null, Math.max(0, currentPeriod.end.getTime() - Date.now()));
  if (cancelNow) return endSubscription(cancelNow);
  if (pendingCancellation) return endSubscription(pendingCancellation);

  // Period boundary: start the next period in a fresh run. Never from inside a handler.
  await condition(allHandlersFinished);
  const carried: CarriedState = {
    status,
    billingAnchor: billingAnchor.toISOString(),
    periodIndex: periodIndex + 1,
    pendingCancellation,
    timeline,
  };
  return continueAsNew<typeof subscriptionWorkflow>({ ...input, carried });
}
