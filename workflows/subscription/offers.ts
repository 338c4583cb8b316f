/**
 * Offers that try to keep a customer: a retention discount when they ask to cancel, and one win-back offer
 * after they have left. Each is recorded (made, accepted, declined, expired) so it is made at most once in a while.
 */
import { allHandlersFinished, condition, setHandler, sleep } from '@temporalio/workflow';
import { addIntervals, parseInterval } from '../../domain/periods';
import type { RetentionOfferTerms } from '../../domain/plan-terms';
import { local } from '../activity-stubs';
import {
  answerRetentionOfferUpdate,
  answerWinBackOfferUpdate,
  CancelRequest,
  CancelResult,
  OfferAnswer,
  RetentionOfferState,
  SubscriptionState,
} from '../definitions';
import type { OfferAnswerRecord } from '../../contract/subscription';
import { refuseWhileNeedsAttention } from './attention';
import { unlessDeterministic } from './deterministic';
import { WIN_BACK_ANSWER_IN_FLIGHT_WINS } from './patch-ids';
import { continueWith, msUntil, note, nowIso, patchTaken, snapshot, SubscriptionRun } from './state';
import { acceptCancellation, changeStatus, returnToStanding } from './transitions';

/** The plan's retention offer when a cancellation may be met with one (only from active or past due). */
export function retentionTerms(run: SubscriptionRun): RetentionOfferTerms | null {
  const terms = run.plan.retentionOffer;
  return terms && (run.status === 'active' || run.status === 'past_due') ? terms : null;
}

/** Asked to cancel: offers the retention discount instead; null when the customer may not get it again yet. */
export async function offerRetention(run: SubscriptionRun, request: CancelRequest, terms: RetentionOfferTerms): Promise<CancelResult | null> {
  const offer: RetentionOfferState = {
    percentOff: terms.percentOff,
    periods: terms.periods,
    expiresAt: addIntervals(new Date(), parseInterval(terms.expiresAfter), 1).toISOString(),
    cancellation: request,
  };
  // An offer that cannot be recorded is not made (noted as offer_record_failed): the cancellation goes ahead as asked.
  const recorded = await unlessDeterministic(run, 'offer_record', () =>
    local.makeCustomerOffer({
      subscriptionId: run.input.subscriptionId,
      customerId: run.input.customerId,
      kind: 'retention',
      terms: { ...terms },
      at: nowIso(),
      expiresAt: offer.expiresAt,
    }),
  );
  if (!recorded?.offered) return null;
  const { expiresAt } = recorded;
  // A retried workflow task keeps the expiry the customer was told (histories from before carry none).
  run.retentionOffer = { ...offer, expiresAt: expiresAt ?? offer.expiresAt };
  note(run, 'retention_offered', `${terms.percentOff} % off ${terms.periods} periods`);
  await changeStatus(run, 'retention_offered', request.reason);
  return { status: 'retention_offered', effectiveAt: null, retentionOffer: run.retentionOffer };
}

/** The answer is in the workflow's state already: one that cannot be recorded is noted and takes effect anyway. */
async function recordAnswer(run: SubscriptionRun, answer: OfferAnswerRecord): Promise<void> {
  await unlessDeterministic(run, 'offer_answer_record', () => local.recordOfferAnswer(answer));
}

// Read through a function: handlers change it, which the compiler's flow analysis cannot see.
export const pendingRetentionOffer = (run: SubscriptionRun): RetentionOfferState | null => run.retentionOffer;

/** The main loop's step when the offer's time is up: recorded as expired, and the cancellation goes ahead. */
export async function expireRetentionOffer(run: SubscriptionRun, offer: RetentionOfferState): Promise<void> {
  run.retentionOffer = null;
  await recordAnswer(run, { subscriptionId: run.input.subscriptionId, kind: 'retention', answer: 'expired', at: nowIso(), requestedBy: 'workflow' });
  note(run, 'retention_expired');
  await returnToStanding(run, 'retention offer expired');
  await acceptCancellation(run, offer.cancellation);
}

export function handleOfferAnswers(run: SubscriptionRun): void {
  setHandler(
    answerRetentionOfferUpdate,
    async (answer) => {
      const offer = run.retentionOffer!;
      run.retentionOffer = null;
      await recordAnswer(run, { subscriptionId: run.input.subscriptionId, kind: 'retention', answer: answer.accept ? 'accepted' : 'declined', at: nowIso(), requestedBy: answer.requestedBy });
      if (answer.accept) {
        run.discount = { percentOff: offer.percentOff, periodsLeft: offer.periods };
        note(run, 'retention_accepted');
        await returnToStanding(run, 'retention offer accepted');
        return { status: run.status };
      }
      note(run, 'retention_declined');
      await returnToStanding(run, 'retention offer declined');
      return { status: (await acceptCancellation(run, offer.cancellation)).status };
    },
    {
      validator: (_answer: OfferAnswer) => {
        // Past its expiry the offer is gone, though the main loop records that only between dunning's steps (an
        // answer then was given the discount); ended by dunning, its step back to the standing status no longer
        // applies (canceled went back to active). Validator-only: a refusal leaves no history, replay is unchanged.
        const offer = run.retentionOffer;
        if (!offer || Date.now() >= Date.parse(offer.expiresAt) || run.status === 'canceled') throw new Error('no_retention_offer');
        if (run.status === 'suspended') throw new Error('subscription_suspended'); // the service waits for a payment
        refuseWhileNeedsAttention(run); // its answer changes the status the failed step returns to
      },
    },
  );

  setHandler(
    answerWinBackOfferUpdate,
    async (answer) => {
      await recordAnswer(run, { subscriptionId: run.input.subscriptionId, kind: 'win_back', answer: answer.accept ? 'accepted' : 'declined', at: nowIso(), requestedBy: answer.requestedBy });
      if (answer.accept) run.winBackAccepted = true;
      else run.winBackOfferExpiresAt = null;
      note(run, answer.accept ? 'win_back_accepted' : 'win_back_declined');
      return { status: answer.accept ? 'active' : run.status };
    },
    {
      validator: (_answer: OfferAnswer) => {
        if (!run.winBackOfferExpiresAt) throw new Error('no_win_back_offer');
      },
    },
  );
}

/** After churn: one win-back offer after the plan's delay; accepting restarts the subscription on its plan. */
export async function offerWinBack(run: SubscriptionRun): Promise<SubscriptionState> {
  const terms = run.plan.winBackOffer;
  if (terms) {
    await sleep(msUntil(addIntervals(new Date(), parseInterval(terms.sendAfter), 1)), { summary: 'win-back offer goes out' });
    const proposedExpiry = addIntervals(new Date(), parseInterval(terms.expiresAfter), 1);
    const offerAt = nowIso();
    const recorded = await unlessDeterministic(run, 'offer_record', () =>
      local.makeCustomerOffer({ subscriptionId: run.input.subscriptionId, customerId: run.input.customerId, kind: 'win_back', terms: { ...terms }, at: offerAt, expiresAt: proposedExpiry.toISOString() }),
    );
    // Not recorded, not made (noted as offer_record_failed): the subscription simply stays canceled.
    if (!recorded) {
      await condition(allHandlersFinished);
      return snapshot(run);
    }
    // A retried workflow task keeps the expiry the customer was told (histories from before carry none).
    const expiresAt = recorded.expiresAt ? new Date(recorded.expiresAt) : proposedExpiry;
    run.winBackOfferExpiresAt = expiresAt.toISOString();
    note(run, 'win_back_offered');
    await condition(() => run.winBackAccepted, msUntil(expiresAt), { summary: 'win-back offer expires' });
    // An acceptance the validator admitted before the expiry may still be recording its answer: it was answered
    // "active", so it decides. Before, the expiry went ahead and the subscription stayed canceled.
    // Asked only then, so no other run pays the patch's marker.
    if (!allHandlersFinished() && patchTaken(run, WIN_BACK_ANSWER_IN_FLIGHT_WINS)) await condition(allHandlersFinished);
    run.winBackOfferExpiresAt = null;
    if (run.winBackAccepted) {
      await condition(allHandlersFinished);
      const restartAt = new Date().toISOString();
      return continueWith(run, {
        status: 'canceled', // the next run moves it to active as it opens the first period
        billingAnchor: restartAt,
        periodIndex: 0,
        periodOpened: false,
        usageOpenSince: restartAt,
        usagePlanId: run.plan.planId,
        pendingCancellation: null,
        scheduledChange: null,
        discount: null,
        timeline: run.timeline,
      });
    }
    await recordAnswer(run, { subscriptionId: run.input.subscriptionId, kind: 'win_back', answer: 'expired', at: nowIso(), requestedBy: 'workflow' });
    note(run, 'win_back_expired');
  }
  await condition(allHandlersFinished);
  return snapshot(run);
}
