/**
 * One long-running workflow per subscription (id `subscription:<id>`). It decides *when* things happen: start,
 * trial, each billing period, usage close, invoicing, collection and dunning, plan changes, pause, cancellation,
 * retention and win-back. Activities do the I/O; domain/ computes the numbers.
 *
 * One run covers one billing period and ends with continue-as-new at the boundary, so history stays small and a
 * workflow code change reaches every subscription within one period.
 *
 *   period n-1               | period n
 *   .........................|--grace--|..............................|
 *                            ^         ^ close usage of n-1, then ONE invoice: flat fees of n (in advance)
 *                            |           + usage of n-1 (in arrears), charged at once; dunning if declined
 *                            continue-as-new starts the run for n
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
  ActiveDiscount,
  answerRetentionOfferUpdate,
  answerWinBackOfferUpdate,
  CancelRequest,
  CancelResult,
  cancelSubscriptionUpdate,
  CarriedState,
  changePlanUpdate,
  DunningState,
  OfferAnswer,
  pauseSubscriptionUpdate,
  paymentMethodUpdatedSignal,
  PeriodInvoiceSummary,
  PlanChangeRequest,
  PlanChangeResult,
  PlanSchedule,
  resumeSubscriptionUpdate,
  RetentionOfferState,
  ScheduledPlanChange,
  SEARCH_ATTRIBUTES,
  SubscriptionState,
  SubscriptionStatus,
  subscriptionStateQuery,
  SubscriptionWorkflowInput,
  TimelineEntry,
  usageRecordedSignal,
  withdrawScheduledChangeUpdate,
} from './definitions';

const RETRY = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' } as const;

// Short, idempotent Postgres transactions run as local activities: one marker event each instead of three
// events plus a workflow task, which keeps a period's history within its budget (about 25 events).
const local = proxyLocalActivities<BillingActivities>({ startToCloseTimeout: '30 seconds', retry: RETRY });

// Collection talks to a payment gateway (slow, may lose its answer): a regular activity, its own visible step,
// retried without limit because chargeInvoice is idempotent per (invoice, attempt).
const { chargeInvoice } = proxyActivities<BillingActivities>({ startToCloseTimeout: '1 minute', retry: RETRY });

/** Kept in the query result and carried across runs; bounded so continue-as-new input stays small. */
const TIMELINE_LIMIT = 50;
const TRIAL_ENDING_NOTICE_MS = 3 * 86_400_000;

const bounds = (period: { start: Date; end: Date }): PeriodBounds => ({ start: period.start.toISOString(), end: period.end.toISOString() });
const nowIso = (): string => new Date().toISOString();
const msUntil = (instant: Date | string): number => Math.max(0, new Date(instant).getTime() - Date.now());

export async function subscriptionWorkflow(input: SubscriptionWorkflowInput): Promise<SubscriptionState> {
  const carried = input.carried;
  let plan: PlanSchedule = input.plan;
  const interval = parseInterval(plan.billingInterval);
  const startAt = new Date(input.startAt);
  const trialEnd = plan.trialPeriod && !carried ? addIntervals(startAt, parseInterval(plan.trialPeriod), 1) : null;

  let status: SubscriptionStatus = carried?.status ?? 'scheduled';
  let billingAnchor = carried ? new Date(carried.billingAnchor) : (trialEnd ?? startAt);
  const periodIndex = carried?.periodIndex ?? 0;
  const periodOpened = carried?.periodOpened ?? false;
  let usageOpenSince = carried ? new Date(carried.usageOpenSince) : billingAnchor;
  let usagePlanId = carried?.usagePlanId ?? plan.planId;
  let pendingCancellation: CancelRequest | null = carried?.pendingCancellation ?? null;
  let scheduledChange: ScheduledPlanChange | null = carried?.scheduledChange ?? null;
  let discount: ActiveDiscount | null = carried?.discount ?? null;
  const timeline: TimelineEntry[] = [...(carried?.timeline ?? [])];

  let currentPeriod: BillingPeriod | null = null;
  let cancelNow: CancelRequest | null = null;
  let retentionOffer: RetentionOfferState | null = null;
  let winBackOfferExpiresAt: string | null = null;
  let winBackAccepted = false;
  let pausedAt: Date | null = null;
  let pausedUntil: string | null = null;
  let resumeRequested = false;
  let dunning: DunningState | null = null;
  let unpaidInvoice: PeriodInvoiceSummary | null = null;
  /** False after a decline that retrying the same payment method cannot fix (expired card). */
  let unpaidRetryable = true;
  let paymentMethodUpdated = false;
  let lastInvoice: PeriodInvoiceSummary | null = null;
  let usageEventsReported = 0;
  let spendingCheckDue = false;

  const note = (event: string, detail?: string): void => {
    timeline.push({ at: nowIso(), event, ...(detail ? { detail } : {}) });
    if (timeline.length > TIMELINE_LIMIT) timeline.splice(0, timeline.length - TIMELINE_LIMIT);
  };

  /** Moves to a new status: Postgres first (the API reads it), then the search attributes ops filter on. */
  const changeStatus = async (next: SubscriptionStatus, reason?: string): Promise<void> => {
    if (next === status) return;
    status = next;
    note(`status:${next}`, reason);
    await local.recordSubscriptionStatus({
      subscriptionId: input.subscriptionId,
      status: next,
      at: nowIso(),
      reason: reason ?? null,
      trialEnd: trialEnd?.toISOString() ?? null,
      usageBlocked: next === 'suspended' || (next === 'paused' && plan.usageWhilePaused === 'reject'),
    });
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.status, value: next },
      { key: SEARCH_ATTRIBUTES.pastDue, value: next === 'past_due' || next === 'suspended' },
    ]);
  };

  const showScheduledChange = (): void => {
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.scheduledChange, value: scheduledChange ? `${scheduledChange.plan.planCode}@${scheduledChange.effectiveAt}` : '' },
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
    scheduledChange,
    retentionOffer,
    discount,
    pausedUntil,
    dunning,
    lastInvoice,
    usageEventsReported,
    timeline: [...timeline],
  });

  // ---------------------------------------------------------------------------------------------------------
  // Money steps
  // ---------------------------------------------------------------------------------------------------------

  /** Charges an invoice once; a decline leaves it for dunning. Nothing to collect on a zero or credit total. */
  const collect = async (invoice: PeriodInvoiceSummary): Promise<void> => {
    lastInvoice = invoice;
    note('invoice_finalized', `${invoice.number} ${invoice.total} ${invoice.currency}`);
    if (invoice.total.startsWith('-')) {
      note('credit_issued', `${invoice.number} ${invoice.total}`);
      return;
    }
    const payment = await chargeInvoice({ invoiceId: invoice.invoiceId, attempt: 1 });
    lastInvoice = { ...invoice, status: payment.invoiceStatus };
    if (payment.outcome === 'succeeded') {
      note('payment_succeeded', invoice.number);
      return;
    }
    note('payment_failed', payment.detail ?? undefined);
    unpaidInvoice = lastInvoice;
    unpaidRetryable = payment.retryable;
    dunning = { invoiceId: invoice.invoiceId, attempt: 1, nextAttemptAt: null };
    await changeStatus('past_due', payment.detail ?? 'payment failed');
  };

  /** Usage of a stretch is closed once its grace window has passed, so late-but-timely events still count. */
  const closeUsage = async (stretch: PeriodBounds, planId: string, planMeters: boolean): Promise<PeriodBounds | null> => {
    if (!planMeters || stretch.start >= stretch.end) return null;
    const closesAt = addIntervals(new Date(stretch.end), parseInterval(plan.usageGracePeriod), 1);
    if (closesAt.getTime() > Date.now()) await sleep(msUntil(closesAt));
    const closed = await local.closeUsagePeriod({ subscriptionId: input.subscriptionId, periodStart: stretch.start, periodEnd: stretch.end, planId });
    note('usage_closed', `${closed.eventCount} events`);
    return stretch;
  };

  /**
   * Dunning: separate, visible charge attempts after the plan's delays; a new payment method retries at once.
   * Returns 'paid', or 'given_up' when the plan's final action ends the subscription.
   */
  const runDunning = async (): Promise<'paid' | 'given_up'> => {
    const invoice = unpaidInvoice!;
    let attempt = dunning?.attempt ?? 1;
    let retryable = unpaidRetryable;
    for (const delay of plan.dunning.retryAfter) {
      if (!retryable) break; // non-retryable declines skip straight to the plan's final step
      const nextAttemptAt = addIntervals(new Date(), parseInterval(delay), 1);
      dunning = { invoiceId: invoice.invoiceId, attempt, nextAttemptAt: nextAttemptAt.toISOString() };
      await local.notifyCustomer({
        subscriptionId: input.subscriptionId,
        eventType: 'dunning.retry_scheduled',
        dedupeKey: `dunning:${invoice.invoiceId}:${attempt + 1}`,
        payload: { invoiceId: invoice.invoiceId, attempt: attempt + 1, at: nextAttemptAt.toISOString() },
      });
      await condition(() => paymentMethodUpdated || cancelNow !== null, msUntil(nextAttemptAt));
      if (cancelNow) return 'given_up';
      paymentMethodUpdated = false;
      attempt += 1;
      const payment = await chargeInvoice({ invoiceId: invoice.invoiceId, attempt });
      note(payment.outcome === 'succeeded' ? 'dunning_paid' : 'dunning_declined', `attempt ${attempt}${payment.detail ? `: ${payment.detail}` : ''}`);
      if (payment.outcome === 'succeeded') return settleDunning(payment.invoiceStatus);
      retryable = payment.retryable;
    }
    if (plan.dunning.finalAction === 'cancel') {
      await local.markInvoiceUncollectible({ invoiceId: invoice.invoiceId, reason: 'dunning exhausted' });
      lastInvoice = { ...invoice, status: 'uncollectible' };
      return 'given_up';
    }
    // Suspend until paid: no new periods, usage refused, and every new payment method gets one more attempt.
    await changeStatus('suspended', 'dunning exhausted');
    dunning = { invoiceId: invoice.invoiceId, attempt, nextAttemptAt: null };
    for (;;) {
      await condition(() => paymentMethodUpdated || cancelNow !== null);
      if (cancelNow) return 'given_up';
      paymentMethodUpdated = false;
      attempt += 1;
      const payment = await chargeInvoice({ invoiceId: invoice.invoiceId, attempt });
      note(payment.outcome === 'succeeded' ? 'dunning_paid' : 'dunning_declined', `attempt ${attempt}`);
      if (payment.outcome === 'succeeded') return settleDunning(payment.invoiceStatus);
    }
  };

  const settleDunning = async (invoiceStatus: string): Promise<'paid'> => {
    lastInvoice = { ...unpaidInvoice!, status: invoiceStatus };
    unpaidInvoice = null;
    dunning = null;
    await changeStatus('active', 'paid');
    return 'paid';
  };

  /** The end: the last usage is still invoiced (with a credit for unused time if the plan gives one). */
  const endSubscription = async (request: CancelRequest, usageStretch: PeriodBounds | null, unusedFrom: Date | null): Promise<SubscriptionState> => {
    const usagePeriod = usageStretch ? await closeUsage(usageStretch, usagePlanId, planMeters(usagePlanId)) : null;
    const unusedFeeCredit = unusedFrom && currentPeriod && plan.creditUnusedOnCancel ? { period: bounds(currentPeriod), from: unusedFrom.toISOString() } : null;
    if (usagePeriod || unusedFeeCredit) {
      const closing = await local.createPeriodInvoice({
        subscriptionId: input.subscriptionId,
        kind: 'closing',
        flatFeePeriod: null,
        usagePeriod,
        usagePlanId,
        unusedFeeCredit,
      });
      await collect(closing);
    }
    await changeStatus('canceled', request.reason);
    return offerWinBack();
  };

  /** After churn: one win-back offer after the plan's delay; accepting restarts the subscription on its plan. */
  const offerWinBack = async (): Promise<SubscriptionState> => {
    const terms = plan.winBackOffer;
    if (terms) {
      await sleep(msUntil(addIntervals(new Date(), parseInterval(terms.sendAfter), 1)));
      const expiresAt = addIntervals(new Date(), parseInterval(terms.expiresAfter), 1);
      const offerAt = nowIso();
      await local.makeCustomerOffer({ subscriptionId: input.subscriptionId, customerId: input.customerId, kind: 'win_back', terms: { ...terms }, at: offerAt, expiresAt: expiresAt.toISOString() });
      winBackOfferExpiresAt = expiresAt.toISOString();
      note('win_back_offered');
      await condition(() => winBackAccepted, msUntil(expiresAt));
      winBackOfferExpiresAt = null;
      if (winBackAccepted) {
        await condition(allHandlersFinished);
        const restartAt = new Date();
        return continueAsNew<typeof subscriptionWorkflow>({
          ...input,
          plan,
          carried: {
            status: 'canceled', // the next run moves it to active as it opens the first period
            billingAnchor: restartAt.toISOString(),
            periodIndex: 0,
            periodOpened: false,
            usageOpenSince: restartAt.toISOString(),
            usagePlanId: plan.planId,
            pendingCancellation: null,
            scheduledChange: null,
            discount: null,
            timeline,
          },
        });
      }
      await local.recordOfferAnswer({ subscriptionId: input.subscriptionId, kind: 'win_back', answer: 'expired', at: nowIso(), requestedBy: 'workflow' });
      note('win_back_expired');
    }
    await condition(allHandlersFinished);
    return snapshot();
  };

  // Read through a function: handlers change it, which the compiler's flow analysis cannot see.
  const pendingRetentionOffer = (): RetentionOfferState | null => retentionOffer;

  const metersByPlan = new Map<string, boolean>([[plan.planId, plan.hasUsageCharges]]);
  const planMeters = (planId: string): boolean => metersByPlan.get(planId) ?? true;

  // ---------------------------------------------------------------------------------------------------------
  // Handlers: queries, signals and updates (updates validate first; a rejected one leaves no history)
  // ---------------------------------------------------------------------------------------------------------

  setHandler(subscriptionStateQuery, snapshot);
  setHandler(usageRecordedSignal, (summary) => {
    usageEventsReported += summary.eventCount;
    spendingCheckDue = true; // the main loop rates the usage so far and raises any threshold crossed
  });
  setHandler(paymentMethodUpdatedSignal, () => {
    paymentMethodUpdated = true;
  });

  const requireStatus = (...allowed: SubscriptionStatus[]): void => {
    if (!allowed.includes(status)) throw new Error('subscription_not_active');
  };

  /** Applies a cancellation as asked: now, or at the end of the period. */
  const acceptCancellation = async (request: CancelRequest): Promise<CancelResult> => {
    if (request.at === 'now' || status === 'scheduled' || status === 'trialing') {
      cancelNow = request;
      note('cancel_requested', `now: ${request.reason}`);
      return { status: 'canceled', effectiveAt: nowIso() };
    }
    pendingCancellation = request;
    note('cancel_requested', `period_end: ${request.reason}`);
    await changeStatus('pending_cancellation', request.reason);
    return { status: 'pending_cancellation', effectiveAt: currentPeriod!.end.toISOString() };
  };

  setHandler(
    cancelSubscriptionUpdate,
    async (request): Promise<CancelResult> => {
      const terms = plan.retentionOffer;
      if (terms && (status === 'active' || status === 'past_due')) {
        const offer: RetentionOfferState = {
          percentOff: terms.percentOff,
          periods: terms.periods,
          expiresAt: addIntervals(new Date(), parseInterval(terms.expiresAfter), 1).toISOString(),
          cancellation: request,
        };
        const { offered } = await local.makeCustomerOffer({
          subscriptionId: input.subscriptionId,
          customerId: input.customerId,
          kind: 'retention',
          terms: { ...terms },
          at: nowIso(),
          expiresAt: offer.expiresAt,
        });
        if (offered) {
          retentionOffer = offer;
          note('retention_offered', `${terms.percentOff} % off ${terms.periods} periods`);
          await changeStatus('retention_offered', request.reason);
          return { status: 'retention_offered', effectiveAt: null, retentionOffer: offer };
        }
      }
      return acceptCancellation(request);
    },
    {
      validator: (request) => {
        if (status === 'canceled' || cancelNow) throw new Error('subscription_already_canceled');
        if (status === 'retention_offered') throw new Error('retention_offer_pending');
        if (request.at !== 'now' && request.at !== 'period_end') throw new Error('invalid_cancel_timing');
      },
    },
  );

  setHandler(
    answerRetentionOfferUpdate,
    async (answer) => {
      const offer = retentionOffer!;
      retentionOffer = null;
      await local.recordOfferAnswer({ subscriptionId: input.subscriptionId, kind: 'retention', answer: answer.accept ? 'accepted' : 'declined', at: nowIso(), requestedBy: answer.requestedBy });
      if (answer.accept) {
        discount = { percentOff: offer.percentOff, periodsLeft: offer.periods };
        note('retention_accepted');
        await changeStatus(unpaidInvoice ? 'past_due' : 'active', 'retention offer accepted');
        return { status };
      }
      note('retention_declined');
      await changeStatus(unpaidInvoice ? 'past_due' : 'active', 'retention offer declined');
      return { status: (await acceptCancellation(offer.cancellation)).status };
    },
    {
      validator: (_answer: OfferAnswer) => {
        if (!retentionOffer) throw new Error('no_retention_offer');
      },
    },
  );

  setHandler(
    answerWinBackOfferUpdate,
    async (answer) => {
      await local.recordOfferAnswer({ subscriptionId: input.subscriptionId, kind: 'win_back', answer: answer.accept ? 'accepted' : 'declined', at: nowIso(), requestedBy: answer.requestedBy });
      if (answer.accept) winBackAccepted = true;
      else winBackOfferExpiresAt = null;
      note(answer.accept ? 'win_back_accepted' : 'win_back_declined');
      return { status: answer.accept ? 'active' : status };
    },
    {
      validator: (_answer: OfferAnswer) => {
        if (!winBackOfferExpiresAt) throw new Error('no_win_back_offer');
      },
    },
  );

  setHandler(
    changePlanUpdate,
    async (request): Promise<PlanChangeResult> => {
      const period = currentPeriod!;
      if (request.effective === 'period_end') {
        // Scheduled for the next renewal; a later request replaces it, and it can be withdrawn until then.
        scheduledChange = { plan: request.plan, effectiveAt: period.end.toISOString(), requestedBy: request.requestedBy };
        note('plan_change_scheduled', `${request.plan.planCode} at ${scheduledChange.effectiveAt}`);
        showScheduledChange();
        return { effective: 'period_end', effectiveAt: scheduledChange.effectiveAt, planCode: request.plan.planCode, invoice: null };
      }
      // Immediate: usage so far is closed and rated at the old plan's prices; the fee is prorated to the second.
      const changeAt = new Date();
      const oldPlan = plan;
      const usagePeriod = await closeUsageNow({ start: usageOpenSince.toISOString(), end: changeAt.toISOString() }, usagePlanId);
      const invoice = await local.createProrationInvoice({
        subscriptionId: input.subscriptionId,
        period: bounds(period),
        changeAt: changeAt.toISOString(),
        oldPlanId: oldPlan.planId,
        newPlanId: request.plan.planId,
        usagePeriod,
      });
      await local.applyPlanChange({ subscriptionId: input.subscriptionId, planId: request.plan.planId, effective: 'immediate', at: changeAt.toISOString(), requestedBy: request.requestedBy });
      plan = request.plan;
      metersByPlan.set(plan.planId, plan.hasUsageCharges);
      usageOpenSince = changeAt;
      usagePlanId = plan.planId;
      scheduledChange = null;
      note('plan_changed', `${oldPlan.planCode} -> ${plan.planCode}`);
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.planCode, value: plan.planCode }]);
      showScheduledChange();
      await collect(invoice);
      return { effective: 'immediate', effectiveAt: changeAt.toISOString(), planCode: plan.planCode, invoice: lastInvoice };
    },
    {
      validator: (request: PlanChangeRequest) => {
        requireStatus('active');
        if (request.plan.planId === plan.planId) throw new Error('same_plan');
        if (request.plan.currency !== plan.currency) throw new Error('currency_mismatch');
        if (request.plan.billingInterval !== plan.billingInterval && request.effective === 'immediate') {
          throw new Error('interval_change_needs_period_end');
        }
      },
    },
  );

  /** Closes usage up to now without waiting for a grace window (the stretch is cut by a plan change). */
  const closeUsageNow = async (stretch: PeriodBounds, planId: string): Promise<PeriodBounds | null> => {
    if (!planMeters(planId) || stretch.start >= stretch.end) return null;
    const closed = await local.closeUsagePeriod({ subscriptionId: input.subscriptionId, periodStart: stretch.start, periodEnd: stretch.end, planId });
    note('usage_closed', `${closed.eventCount} events`);
    return stretch;
  };

  setHandler(
    withdrawScheduledChangeUpdate,
    () => {
      note('plan_change_withdrawn', scheduledChange?.plan.planCode);
      scheduledChange = null;
      showScheduledChange();
      return { withdrawn: true };
    },
    {
      validator: (_request: { requestedBy: string }) => {
        if (!scheduledChange) throw new Error('no_scheduled_change');
      },
    },
  );

  setHandler(
    pauseSubscriptionUpdate,
    async (request) => {
      pausedAt = new Date();
      pausedUntil = request.until;
      resumeRequested = false;
      await changeStatus('paused', request.until ? `until ${request.until}` : 'until resumed');
      return { status, pausedUntil };
    },
    {
      validator: (request) => {
        requireStatus('active');
        if (request.until && new Date(request.until).getTime() <= Date.now()) throw new Error('pause_until_in_past');
      },
    },
  );

  setHandler(
    resumeSubscriptionUpdate,
    () => {
      resumeRequested = true;
      return { status: 'active' as SubscriptionStatus };
    },
    {
      validator: (_request: { requestedBy: string }) => {
        if (status !== 'paused') throw new Error('subscription_not_paused');
      },
    },
  );

  // ---------------------------------------------------------------------------------------------------------
  // The first run: scheduled start and trial
  // ---------------------------------------------------------------------------------------------------------

  if (!carried) {
    note('created');
    if (startAt.getTime() > Date.now()) {
      await condition(() => cancelNow !== null, msUntil(startAt));
      if (cancelNow) return endSubscription(cancelNow, null, null);
    }
    if (trialEnd) {
      await changeStatus('trialing');
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: trialEnd }]);
      const noticeAt = new Date(trialEnd.getTime() - TRIAL_ENDING_NOTICE_MS);
      if (noticeAt.getTime() > Date.now() && !(await condition(() => cancelNow !== null, msUntil(noticeAt)))) {
        await local.notifyCustomer({
          subscriptionId: input.subscriptionId,
          eventType: 'trial.ending',
          dedupeKey: `trial.ending:${input.subscriptionId}`,
          payload: { trialEnd: trialEnd.toISOString() },
        });
      }
      if (!cancelNow) await condition(() => cancelNow !== null, msUntil(trialEnd));
      if (cancelNow) return endSubscription(cancelNow, null, null);
      note('trial_converted');
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Period n: close n-1's usage after its grace window, invoice (n's fees + n-1's usage), collect.
  // ---------------------------------------------------------------------------------------------------------

  let period = billingPeriod(billingAnchor, interval, periodIndex);
  currentPeriod = period;
  if (!periodOpened) {
    if (status !== 'active') await changeStatus('active');
    const usagePlan = usagePlanId;
    if (scheduledChange && new Date(scheduledChange.effectiveAt) <= period.start) {
      await local.applyPlanChange({ subscriptionId: input.subscriptionId, planId: scheduledChange.plan.planId, effective: 'period_end', at: period.start.toISOString(), requestedBy: scheduledChange.requestedBy });
      note('plan_changed', `${plan.planCode} -> ${scheduledChange.plan.planCode}`);
      plan = scheduledChange.plan;
      metersByPlan.set(plan.planId, plan.hasUsageCharges);
      scheduledChange = null;
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.planCode, value: plan.planCode }]);
      showScheduledChange();
    }
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: period.end }]);

    const usagePeriod =
      periodIndex > 0 ? await closeUsage({ start: usageOpenSince.toISOString(), end: period.start.toISOString() }, usagePlan, planMeters(usagePlan)) : null;
    const request: PeriodInvoiceRequest = {
      subscriptionId: input.subscriptionId,
      kind: 'period',
      flatFeePeriod: bounds(period),
      flatFeePlanId: plan.planId,
      usagePeriod,
      usagePlanId: usagePlan,
      discountPercentOff: discount && discount.periodsLeft > 0 ? discount.percentOff : null,
    };
    if (discount) discount = discount.periodsLeft > 1 ? { ...discount, periodsLeft: discount.periodsLeft - 1 } : null;
    usageOpenSince = period.start;
    usagePlanId = plan.planId;
    await collect(await local.createPeriodInvoice(request));
  }

  // ---------------------------------------------------------------------------------------------------------
  // Wait for the boundary, serving whatever the customer asks for in between.
  // ---------------------------------------------------------------------------------------------------------

  for (;;) {
    if (unpaidInvoice && !cancelNow) {
      if ((await runDunning()) === 'given_up') {
        return endSubscription(cancelNow ?? { at: 'now', reason: 'payment failed', requestedBy: 'dunning' }, { start: usageOpenSince.toISOString(), end: nowIso() }, null);
      }
      continue;
    }
    if (status === 'paused' && !cancelNow) {
      const resumed = (): boolean => resumeRequested || cancelNow !== null;
      if (pausedUntil) await condition(resumed, msUntil(pausedUntil));
      else await condition(resumed);
      if (cancelNow) continue; // handled below
      // The paused time is given back: the period (and every later boundary) moves later by it.
      const pausedMs = Date.now() - pausedAt!.getTime();
      billingAnchor = new Date(billingAnchor.getTime() + pausedMs);
      period = billingPeriod(billingAnchor, interval, periodIndex);
      currentPeriod = period;
      pausedAt = null;
      pausedUntil = null;
      note('resumed', `${Math.round(pausedMs / 1000)} s paused`);
      upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.periodEnd, value: period.end }]);
      await changeStatus('active', 'resumed');
      continue;
    }
    const offer = pendingRetentionOffer();
    const deadlines = [period.end.getTime(), offer ? new Date(offer.expiresAt).getTime() : Infinity];
    const wakeAt = Math.min(...deadlines);
    await condition(
      () =>
        cancelNow !== null ||
        unpaidInvoice !== null ||
        status === 'paused' ||
        pendingRetentionOffer() !== offer || // an offer made or answered moves the next deadline
        spendingCheckDue ||
        workflowInfo().continueAsNewSuggested,
      msUntil(new Date(wakeAt)),
    );
    if (cancelNow) {
      const now = new Date();
      return endSubscription(cancelNow, { start: usageOpenSince.toISOString(), end: now.toISOString() }, now);
    }
    if (spendingCheckDue) {
      spendingCheckDue = false;
      const spending = await local.checkSpending({
        subscriptionId: input.subscriptionId,
        from: usageOpenSince.toISOString(),
        at: nowIso(),
        periodEnd: period.end.toISOString(),
      });
      for (const alert of spending.raised) note('spending_alert', `${alert} at ${spending.spend}`);
      if (spending.capped) note('usage_capped', spending.spend);
    }
    const expired = pendingRetentionOffer();
    if (expired && Date.now() >= new Date(expired.expiresAt).getTime()) {
      retentionOffer = null;
      await local.recordOfferAnswer({ subscriptionId: input.subscriptionId, kind: 'retention', answer: 'expired', at: nowIso(), requestedBy: 'workflow' });
      note('retention_expired');
      await changeStatus(unpaidInvoice ? 'past_due' : 'active', 'retention offer expired');
      await acceptCancellation(expired.cancellation);
      continue;
    }
    if (Date.now() >= period.end.getTime() || workflowInfo().continueAsNewSuggested) break;
  }

  await condition(allHandlersFinished);
  const boundaryReached = Date.now() >= period.end.getTime();
  if (boundaryReached && pendingCancellation) {
    return endSubscription(pendingCancellation, { start: usageOpenSince.toISOString(), end: period.end.toISOString() }, null);
  }
  // Period boundary (or a suggested restart within the period): a fresh run. Never from inside a handler.
  const next: CarriedState = {
    status,
    billingAnchor: billingAnchor.toISOString(),
    periodIndex: boundaryReached ? periodIndex + 1 : periodIndex,
    periodOpened: !boundaryReached,
    usageOpenSince: usageOpenSince.toISOString(),
    usagePlanId,
    pendingCancellation,
    scheduledChange,
    discount,
    timeline,
  };
  return continueAsNew<typeof subscriptionWorkflow>({ ...input, plan, carried: next });
}
