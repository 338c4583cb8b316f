import { addIntervals, parseInterval } from '../../domain/periods';
import { Client, WorkflowUpdateFailedError } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import type { Request, Router } from 'express';
import type { Database } from '../../store/database';
import { findPlan, findPlanVersion, PlanRow } from '../../store/catalog';
import { findCustomer } from '../../store/customers';
import { findSubscription as findSubscriptionRow, insertScheduledSubscription, SubscriptionRow } from '../../store/subscriptions';
import { startSubscriptionWorkflow } from '../subscription-start';
import {
  cancelSubscriptionUpdate,
  subscriptionStateQuery,
  subscriptionWorkflowId,
} from '../../workflows/definitions';
import { findSubscriptionOr404 } from './lookups';
import { keyNamesAnotherRequest, requestUpdateId, scopedRequestId, uuidFromRequestId } from '../idempotency';
import { ApiProblem, isProblemCode, unavailableDependencyOf } from '../problem';
import { liveQueryTimeoutMs, withTemporalDeadline } from '../temporal-deadline';
import { cancelSubscriptionBody, createSubscriptionBody } from '../schemas';
import { subscriptionJson, uncoveredUsageJson } from '../serializers';
import { ADMIN_ONLY, declareRoutes } from '../route-declarations';
import { importSubscriptions, importSubscriptionsBody } from '../subscription-import';
import { refuseMeteredOverlap } from '../metered-overlap';
import { uncoveredUsageBefore } from '../../store/uncovered-usage';

export function subscriptionsRouter(db: Database, temporal: Client): Router {
  const routes = declareRoutes();

  const findSubscription = (id: string): Promise<SubscriptionRow> => findSubscriptionOr404(db, id);

  routes.post('/', { allow: ['app'] }, async (req, res) => {
    const body = createSubscriptionBody.parse(req.body);
    const customer = await findCustomer(db, body.customer_id);
    if (!customer) throw new ApiProblem('customer_not_found', `no customer ${body.customer_id}`);
    const plan = await findPlanVersion(db, body.plan_code, body.plan_version);
    if (!plan) throw new ApiProblem('plan_not_found', `no plan ${body.plan_code}${body.plan_version ? ` version ${body.plan_version}` : ''}`);
    if (plan.currency !== customer.currency) {
      throw new ApiProblem('currency_mismatch', `plan bills in ${plan.currency}, customer pays in ${customer.currency}`);
    }
    // "Now" starts on a whole second: usage stamped in that same second without milliseconds (as the README's
    // `date -u +%FT%TZ` does) falls inside the first period instead of before it (docs/usage-events.md).
    const startAt = body.start_at ? new Date(body.start_at) : new Date(Math.floor(Date.now() / 1000) * 1000);

    // The row commits, then its workflow starts (api/subscription-start.ts says why in that order). With an
    // Idempotency-Key the id (and so the workflow id) comes from the request: a repeat whose first answer was never
    // stored (Temporal down after the commit, or the process died) finds the subscription it created instead of
    // creating another. Only that repeat ever starts the row's workflow, so it is judged against what its first
    // attempt committed (sameRequest), before the checks of a new subscription: refused because a plan version was
    // published since, or because its start_at has meanwhile slipped a period behind, it would leave the row
    // `scheduled` with no workflow, never billing.
    const requestId = scopedRequestId((req as Request & { apiKey?: { id: string } }).apiKey?.id, 'subscribe', req.header('Idempotency-Key'));
    const id = requestId ? uuidFromRequestId(requestId) : randomUUID();
    const created = requestId ? await findSubscriptionRow(db, id) : undefined;
    if (created) {
      const createdPlan = await findPlan(db, created.plan_id);
      if (!sameRequest(created, createdPlan, { customerId: customer.id, planCode: body.plan_code, planVersion: body.plan_version, startAt: body.start_at ? startAt : undefined })) {
        throw keyNamesAnotherRequest(req.header('Idempotency-Key'), `subscription ${created.id}, another customer, plan or start`);
      }
      await startSubscriptionWorkflow(db, temporal, created, createdPlan, customer);
      return void res.status(201).json(await createdSubscriptionJson(db, created, createdPlan));
    }
    // A start in the past is allowed within its first period (a contract signed a few days ago); further back it
    // would bill several periods at once, so it is refused.
    if (addIntervals(startAt, parseInterval(plan.billing_interval), 1).getTime() <= Date.now()) {
      throw new ApiProblem('validation_failed', 'start_at may be in the past by less than one billing period', [{ path: 'start_at', message: 'too far in the past' }]);
    }
    // Checked and written under the customer's lock: of two requests racing for one customer, the second sees the
    // first's row (api/metered-overlap.ts).
    const row = await db.transaction(async (trx) => {
      await refuseMeteredOverlap(trx, { customerId: customer.id, planId: plan.id, from: startAt });
      return insertScheduledSubscription(trx, { id, customerId: customer.id, planId: plan.id, workflowId: subscriptionWorkflowId(id), startAt });
    });
    await startSubscriptionWorkflow(db, temporal, row, plan, customer);
    res.status(201).json(await createdSubscriptionJson(db, row, plan));
  });

  /**
   * Bulk import of subscriptions running elsewhere (api/subscription-import.ts): up to 1,000 rows, each answered in
   * the report as created, existing (imported before: idempotent per external id) or rejected with a problem code.
   * Admin only: it writes subscriptions for any customer, in their current period, without a first invoice.
   */
  routes.post('/import', ADMIN_ONLY, async (req, res) => {
    const body = importSubscriptionsBody.parse(req.body);
    const rows = await importSubscriptions({ db, temporal }, body.rows);
    const count = (status: string): number => rows.filter((row) => row.status === status).length;
    res.json({ created: count('created'), existing: count('existing'), rejected: count('rejected'), rows });
  });

  /**
   * Stored state (Postgres) plus the workflow's live state. The live part is a query a worker must answer, so it is
   * bounded by a short deadline: when Temporal or the worker cannot answer, `live` is null and `live_unavailable`
   * says why (`temporal_unavailable`, or `live_query_failed` for any other refusal), never a hang.
   */
  routes.get('/:id', { allow: ['app', 'finance'] }, async (req, res) => {
    const row = await findSubscription(req.params.id);
    const plan = await findPlan(db, row.plan_id);
    let live: unknown = null;
    let liveUnavailable: { code: string; message: string } | undefined;
    try {
      live = await withTemporalDeadline(temporal, () => temporal.workflow.getHandle(row.workflow_id).query(subscriptionStateQuery), liveQueryTimeoutMs());
    } catch (error) {
      liveUnavailable = { code: unavailableDependencyOf(error) === 'temporal_unavailable' ? 'temporal_unavailable' : 'live_query_failed', message: (error as Error).message };
    }
    res.json({ ...subscriptionJson(row, plan), live, ...(liveUnavailable ? { live_unavailable: liveUnavailable.code, live_error: liveUnavailable.message } : {}) });
  });

  routes.post('/:id/cancel', { allow: ['app'] }, async (req, res) => {
    const body = cancelSubscriptionBody.parse(req.body);
    const row = await findSubscription(req.params.id);
    const updateId = requestUpdateId(req, (req as Request & { apiKey?: { id: string } }).apiKey?.id, 'cancel');
    try {
      const result = await withTemporalDeadline(temporal, () =>
        temporal.workflow.getHandle(row.workflow_id).executeUpdate(cancelSubscriptionUpdate, {
          args: [{ at: body.at, reason: body.reason, requestedBy: 'api' }],
          // A retried request with the same key is the same update: applied once, answered again. Scoped per API key.
          ...(updateId ? { updateId } : {}),
        }),
      );
      res.json({ status: result.status, effective_at: result.effectiveAt });
    } catch (error) {
      // The validator's refusal is a problem code (every one it may throw, as the lifecycle routes map them): a list
      // here once missed `retention_offer_pending` and answered a cancel during an open offer with a 500.
      const code = error instanceof WorkflowUpdateFailedError ? error.cause?.message : undefined;
      if (code && isProblemCode(code)) throw new ApiProblem(code, `the subscription cannot be canceled: ${code.replace(/_/g, ' ')}`);
      if ((error as Error).name === 'WorkflowNotFoundError') {
        throw new ApiProblem('subscription_already_canceled', 'the subscription workflow has ended');
      }
      throw error;
    }
  });

  return routes.router;
}

/**
 * The 201 answer: the subscription, and the customer's stored events its start leaves unbilled (of its plan's types,
 * stamped before the start, priced by no subscription). Nothing is refused: ingestion keeps a customer's usage before
 * any subscription so that one may start back-dated, and the caller learns here that this one did not.
 */
async function createdSubscriptionJson(db: Database, row: SubscriptionRow, plan: PlanRow): Promise<object> {
  const uncovered = await uncoveredUsageBefore(db, row.customer_id, plan.id, row.start_at);
  return {
    ...subscriptionJson(row, plan),
    ...uncoveredUsageJson(uncovered),
  };
}

/**
 * Whether a subscription found under a request's key is what that request asks for: its customer, its plan code and
 * (when the request names one) version, and (when it names one) its start. Without a version the request meant the
 * newest at its first attempt, which the row holds; a version published since does not make it another request.
 */
function sameRequest(
  created: SubscriptionRow,
  createdPlan: PlanRow,
  request: { readonly customerId: string; readonly planCode: string; readonly planVersion?: number; readonly startAt?: Date },
): boolean {
  return (
    created.customer_id === request.customerId &&
    createdPlan.code === request.planCode &&
    (request.planVersion === undefined || createdPlan.version === request.planVersion) &&
    (request.startAt === undefined || created.start_at.getTime() === request.startAt.getTime())
  );
}
