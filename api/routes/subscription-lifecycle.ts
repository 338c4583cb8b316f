/**
 * Lifecycle changes over HTTP: plan changes, pause and resume, retention and win-back answers. Each is a
 * Temporal update on the subscription's workflow: its validator rejects what cannot apply (nothing is written,
 * no history is added) and the answer says what will happen. The update id is derived from the caller's API key,
 * its Idempotency-Key and the request's hash (`requestUpdateId`, api/idempotency.ts), so a retried request is
 * applied once, and neither another API key reusing the same Idempotency-Key nor another request under an expired
 * one is handed the first request's answer.
 */
import { Client, WorkflowUpdateFailedError } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import type { Request, Router } from 'express';
import type { Knex } from 'knex';
import { formatMoney, toDecimal } from '../../domain/money';
import { graceWindowFitsInterval, planScheduleTerms } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import { findPlan, findPlanVersion, type PlanRow } from '../../store/catalog';
import { findPeriodInvoice } from '../../store/invoices';
import { findPlanChangeByRequest, PLAN_CHANGE_ALREADY_MADE } from '../../store/plan-changes';
import type { SubscriptionRow } from '../../store/subscriptions';
import {
  answerRetentionOfferUpdate,
  answerWinBackOfferUpdate,
  changePlanUpdate,
  pauseSubscriptionUpdate,
  PlanChangeResult,
  resumeSubscriptionUpdate,
  retryFailedStepUpdate,
  subscriptionStateQuery,
  withdrawScheduledChangeUpdate,
} from '../../workflows/definitions';
import { findSubscriptionOr404 } from './lookups';
import { requestUpdateId, retriesUnfinishedRequest } from '../idempotency';
import { causeChain } from '../cause-chain';
import { ApiProblem, isProblemCode } from '../problem';
import { liveQueryTimeoutMs, withTemporalDeadline } from '../temporal-deadline';
import { emptyBody, pauseSubscriptionBody, planChangeBody } from '../schemas';
import { declareRoutes } from '../route-declarations';
import { refuseMeteredOverlap } from '../metered-overlap';
import { forgetScheduledChange, lockCustomersForMeteredCheck, recordScheduledChange } from '../../store/metered-overlaps';

/**
 * A change at period end opens the new plan's first period (its fee in advance) only after the grace window of the
 * plan the closed period is rated under (workflows/subscription/period.ts `closedGrace`). A window not shorter than
 * the new interval (a monthly plan's P7D before a daily plan) billed the new plan's first fee 7 days late, 8 daily
 * periods at once, and refused pauses and plan changes (409 period_opening) all the while: the rule a plan is
 * published under (docs/pricing.md "Validation"), applied to the window that plan's first period waits for.
 */
function refuseClosedGraceOutlastingInterval(subscription: SubscriptionRow, current: PlanRow, next: PlanRow): void {
  // Before the first period the change is made at once and no closed period waits (workflows/subscription/lifecycle.ts).
  if (subscription.status === 'scheduled' || subscription.status === 'trialing') return;
  const closing = planScheduleTerms(current);
  if (!closing.hasUsageCharges || graceWindowFitsInterval(next.billing_interval, closing.usageGracePeriod)) return;
  const message = `the current plan's usage grace window ${closing.usageGracePeriod} must be shorter than the new billing interval ${next.billing_interval} (the new plan's first period waits for it)`;
  throw new ApiProblem('validation_failed', message, [{ path: 'plan_code', message }]);
}

export function subscriptionLifecycleRouter(db: Database, temporal: Client): Router {
  const routes = declareRoutes();

  const findSubscription = (id: string): Promise<SubscriptionRow> => findSubscriptionOr404(db, id);

  /** Runs an update and maps a validator's rejection (its message is a problem code) to a 4xx. */
  async function update<Ret, Arg>(
    req: Request,
    subscription: SubscriptionRow,
    definition: UpdateDefinition<Ret, [Arg]>,
    args: [Arg],
  ): Promise<Ret> {
    const updateId = requestUpdateId(req, apiKeyIdOf(req), definition.name);
    try {
      // Bounded: Temporal or a worker that does not answer is a quick 503 temporal_unavailable (api/problem.ts).
      return await withTemporalDeadline(temporal, () =>
        temporal.workflow.getHandle(subscription.workflow_id).executeUpdate(definition, {
          args,
          ...(updateId ? { updateId } : {}),
        }),
      );
    } catch (error) {
      const code = error instanceof WorkflowUpdateFailedError ? error.cause?.message : undefined;
      if (code && isProblemCode(code)) throw new ApiProblem(code, `the subscription cannot do that now: ${code.replace(/_/g, ' ')}`);
      if ((error as Error).name === 'WorkflowNotFoundError') throw new ApiProblem('subscription_not_active', 'the subscription has ended');
      throw error;
    }
  }

  const apiKeyIdOf = (req: Request): string | undefined => (req as Request & { apiKey?: { id: string } }).apiKey?.id;
  const actor = (req: Request): string => apiKeyIdOf(req) ?? 'api';

  routes.post('/:id/plan-change', { allow: ['app'] }, async (req, res) => {
    const body = planChangeBody.parse(req.body);
    const subscription = await findSubscription(req.params.id);
    const current = await findPlan(db, subscription.plan_id);
    const plan = await findPlanVersion(db, body.plan_code, body.plan_version);
    if (!plan) throw new ApiProblem('plan_not_found', `no plan ${body.plan_code}`);
    if (plan.currency !== current.currency) throw new ApiProblem('currency_mismatch', `the new plan bills in ${plan.currency}, the subscription in ${current.currency}`);
    if (body.effective === 'period_end') refuseClosedGraceOutlastingInterval(subscription, current, plan);
    // A retry of this very request after an answer that was not final (a deadline passed: a 503 gave its key back)
    // may find the change it asked for already made. Temporal answers its update id with the first outcome (the
    // proration invoice), so it is asked; refused here, the retry would store 409 same_plan under the key for good.
    // The workflow's validator still refuses a change to the plan in force.
    if (plan.id === current.id && !retriesUnfinishedRequest(res)) throw new ApiProblem('same_plan', 'the subscription is already on that plan version');
    // Under the customer's lock until the workflow answers: an immediate change has switched the row's plan by then,
    // and a scheduled one is recorded on the row before the lock is let go, so a subscription created meanwhile for
    // the customer is checked against the new plan from the change's instant (api/metered-overlap.ts). A cancellation
    // takes no lock: one that reached the row first makes the record a no-op (store/metered-overlaps.ts).
    // Before a later start the new plan prices from that start (the workflow switches the plan at once, either timing).
    const now = new Date(Math.max(Date.now(), subscription.start_at.getTime()));
    const from = body.effective === 'immediate' ? now : (subscription.current_period_end ?? now);
    const outcome = await db.transaction(async (trx) => {
      await refuseMeteredOverlap(trx, { customerId: subscription.customer_id, planId: plan.id, from, subscriptionId: subscription.id });
      const asking = update(req, subscription, changePlanUpdate, [{ plan: planScheduleTerms(plan), effective: body.effective, requestedBy: actor(req) }]);
      const asked = await answerOf(asking).catch(async (refusal: unknown) => {
        // The attempt whose answer was lost recorded its change on the row over the one scheduled before (it may have
        // been taken). Refused now, it never was (a refused update id is asked again, an admitted one answers its
        // outcome): the row takes back what the workflow holds, else it showed this plan until the boundary switched
        // to the earlier one, and the overlap check counted the wrong plan's event types.
        if (!(refusal instanceof ApiProblem) || body.effective !== 'period_end' || !retriesUnfinishedRequest(res)) throw refusal;
        await recordWorkflowScheduledChange(trx, subscription);
        return { refused: refusal };
      });
      if ('refused' in asked) return asked;
      // Before the first period (start or trial) a change at period end is made now (answered `immediate`): nothing is scheduled.
      const scheduled = body.effective === 'period_end' && !('answer' in asked && asked.answer.effective === 'immediate');
      if (scheduled) await recordScheduledChange(trx, subscription.id, plan.id, 'answer' in asked ? new Date(asked.answer.effectiveAt) : from);
      return asked;
    }).catch((error: unknown) => ({ lost: error }));
    if ('refused' in outcome) throw outcome.refused;
    // A lost answer is rethrown after the commit that kept its record; a superseded repeat gets its first outcome.
    const result = 'answer' in outcome ? outcome.answer : await firstOutcomeOfSupersededChange(req, subscription, outcome.lost);
    res.json({
      effective: result.effective,
      effective_at: result.effectiveAt,
      plan_code: result.planCode,
      invoice: result.invoice && { id: result.invoice.invoiceId, number: result.invoice.number, total: result.invoice.total, currency: result.invoice.currency, status: result.invoice.status },
    });
  });

  /**
   * The workflow's answer, or the failure that lost it (a deadline passed, the connection dropped): the workflow may
   * have taken the request all the same, so the caller records what it asked before the error reaches the client
   * (who retries with the same Idempotency-Key and gets the workflow's first answer). An answer that refuses is thrown:
   * nothing took effect, and the transaction writes nothing.
   */
  async function answerOf<T>(asking: Promise<T>): Promise<{ answer: T } | { lost: unknown }> {
    try {
      return { answer: await asking };
    } catch (error) {
      if (error instanceof ApiProblem || error instanceof WorkflowUpdateFailedError) throw error;
      return { lost: error };
    }
  }

  /**
   * Puts on the row the change the workflow holds (or none): asked under the customer's lock, after a refusal that
   * says the row's record came from a request the workflow did not take. A workflow that cannot answer in time leaves
   * the record as it is (claiming a change refuses more; missing one lets two subscriptions bill a type).
   */
  async function recordWorkflowScheduledChange(trx: Knex.Transaction, subscription: SubscriptionRow): Promise<void> {
    const handle = temporal.workflow.getHandle(subscription.workflow_id);
    const state = await withTemporalDeadline(temporal, () => handle.query(subscriptionStateQuery), liveQueryTimeoutMs()).catch(() => null);
    if (!state) return;
    if (state.scheduledChange) await recordScheduledChange(trx, subscription.id, state.scheduledChange.plan.planId, new Date(state.scheduledChange.effectiveAt));
    else await forgetScheduledChange(trx, subscription.id);
  }

  /**
   * A repeat of a plan change request (same Idempotency-Key and body) after a later workflow run: Temporal answers a
   * repeated update id with its first outcome only within a run, so the workflow was asked again and found the change
   * made and superseded since (store/plan-changes.ts `PlanChangeAlreadyMade`): nothing took effect. The repeat gets
   * the first outcome from the stored change, as a repeat within the run does; any other failure is rethrown.
   */
  async function firstOutcomeOfSupersededChange(req: Request, subscription: SubscriptionRow, error: unknown): Promise<PlanChangeResult> {
    const superseded = causeChain(error).some((link) => (link as { type?: unknown } | null)?.type === PLAN_CHANGE_ALREADY_MADE);
    const requestKey = requestUpdateId(req, apiKeyIdOf(req), changePlanUpdate.name);
    const change = superseded && requestKey ? await findPlanChangeByRequest(db, subscription.id, requestKey) : undefined;
    if (!change) throw error;
    const [plan, invoice] = [await findPlan(db, change.new_plan_id), await findPeriodInvoice(db, subscription.id, change.change_at.toISOString(), 'proration')];
    return {
      effective: 'immediate',
      effectiveAt: change.change_at.toISOString(),
      planCode: plan.code,
      invoice: invoice
        ? { invoiceId: invoice.id, number: invoice.number ?? '', total: formatMoney(toDecimal(invoice.total), invoice.currency), currency: invoice.currency, status: invoice.status }
        : null,
    };
  }

  routes.delete('/:id/scheduled-change', { allow: ['app'] }, async (req, res) => {
    emptyBody.parse(req.body ?? {});
    const subscription = await findSubscription(req.params.id);
    // Under the customer's lock, as scheduling is: a change scheduled right after this withdrawal is recorded after
    // this clears the row, never before. An answer that was lost leaves the row claiming the change (it may stand).
    const withdrawn = await db.transaction(async (trx) => {
      await lockCustomersForMeteredCheck(trx, [subscription.customer_id]);
      const answer = await update(req, subscription, withdrawScheduledChangeUpdate, [{ requestedBy: actor(req) }]);
      await forgetScheduledChange(trx, subscription.id);
      return answer;
    });
    res.json(withdrawn);
  });

  routes.post('/:id/pause', { allow: ['app'] }, async (req, res) => {
    const body = pauseSubscriptionBody.parse(req.body ?? {});
    const subscription = await findSubscription(req.params.id);
    const result = await update(req, subscription, pauseSubscriptionUpdate, [{ until: body.until ?? null, requestedBy: actor(req) }]);
    res.json({ status: result.status, paused_until: result.pausedUntil });
  });

  routes.post('/:id/resume', { allow: ['app'] }, async (req, res) => {
    emptyBody.parse(req.body ?? {});
    const subscription = await findSubscription(req.params.id);
    res.json(await update(req, subscription, resumeSubscriptionUpdate, [{ requestedBy: actor(req) }]));
  });

  for (const answer of ['accept', 'decline'] as const) {
    routes.post(`/:id/retention/${answer}`, { allow: ['app'] }, async (req, res) => {
      emptyBody.parse(req.body ?? {});
      const subscription = await findSubscription(req.params.id);
      // An offer made in dunning (past due may get one) outlives dunning's end, and its answer's step back to the
      // standing status (active, or past due) no longer applies. Ended (dunning gave up; the workflow waits for its
      // win-back offer): answered, the canceled subscription went back to active with the discount, or to
      // pending_cancellation, the row cleared its cancellation and usage end, and nothing billed it again.
      // Suspended: accepted, it went to past_due with its usage unblocked while the service stayed suspended;
      // declined, to a cancellation at a period end that never comes while suspended. Refused before the workflow
      // is asked, as a cancellation at period end is while suspended; a cancellation now still ends it.
      if (subscription.status === 'canceled') throw new ApiProblem('no_retention_offer', 'the subscription has ended: its retention offer lapsed with it');
      if (subscription.status === 'suspended') throw new ApiProblem('subscription_suspended', 'the subscription is suspended until its unpaid invoice is paid: answer the offer after that, or cancel now');
      res.json(await update(req, subscription, answerRetentionOfferUpdate, [{ accept: answer === 'accept', requestedBy: actor(req) }]));
    });
  }

  // Ops fixed the data behind a failed billing step (status needs_attention): the workflow runs that step again.
  // Accepted, not done: if it fails again the subscription goes back to needs_attention (GET shows which).
  routes.post('/:id/retry', { allow: ['finance'] }, async (req, res) => {
    emptyBody.parse(req.body ?? {});
    const subscription = await findSubscription(req.params.id);
    const result = await update(req, subscription, retryFailedStepUpdate, [{ requestedBy: actor(req) }]);
    res.status(202).json({ status: result.status, retrying_step: result.step });
  });

  routes.post('/:id/win-back/accept', { allow: ['app'] }, async (req, res) => {
    emptyBody.parse(req.body ?? {});
    const subscription = await findSubscription(req.params.id);
    // A restart bills its usage again from now: refused when another subscription of the customer has priced one of
    // its event types since it ended (api/metered-overlap.ts).
    const restarted = await db.transaction(async (trx) => {
      await refuseMeteredOverlap(trx, { customerId: subscription.customer_id, planId: subscription.plan_id, from: new Date(), subscriptionId: subscription.id });
      return update(req, subscription, answerWinBackOfferUpdate, [{ accept: true, requestedBy: actor(req) }]);
    });
    res.json(restarted);
  });

  return routes.router;
}
