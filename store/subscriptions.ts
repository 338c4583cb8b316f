import type { Knex } from 'knex';
import { nextAttemptAnnouncedSql } from './payments';
import type { PlanRow } from './catalog';
import type { CustomerRow } from './customers';
import { enqueueOutboxEvent, writeAudit } from './outbox';
import { usageEndSql } from './usage';
import { NO_SCHEDULED_CHANGE } from './metered-overlaps';

export interface SubscriptionRow {
  id: string;
  customer_id: string;
  plan_id: string;
  status: string;
  workflow_id: string;
  start_at: Date;
  trial_end: Date | null;
  current_period_start: Date | null;
  current_period_end: Date | null;
  canceled_at: Date | null;
  cancel_reason: string | null;
  usage_blocked: boolean;
  /** Where its billable usage stops, once its workflow decided an end (migration 0620); null otherwise. */
  usage_ends_at: Date | null;
  /** Stretches it gave no service in, from an end to a win-back restart (migration 0660), as Postgres prints a tstzmultirange. */
  service_gaps: string;
  /**
   * A plan change scheduled for the period's end, as the workflow accepted it (migration 0720): the metered-overlap
   * check counts this plan from `scheduled_change_at` on (store/metered-overlaps.ts). Null when none is scheduled.
   */
  scheduled_change_plan_id: string | null;
  scheduled_change_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** A subscription with the plan version and customer it bills: what invoicing needs in one read. */
export interface SubscriptionContext {
  readonly subscription: SubscriptionRow;
  readonly plan: PlanRow;
  readonly customer: CustomerRow;
}

export async function loadSubscriptionContext(
  db: Knex | Knex.Transaction,
  subscriptionId: string,
): Promise<SubscriptionContext | undefined> {
  const subscription = await db<SubscriptionRow>('subscriptions').where({ id: subscriptionId }).first();
  if (!subscription) return undefined;
  // One after the other: inside a transaction both would go to its one connection at once (store/transactions.ts).
  const plan = await db<PlanRow>('plans').where({ id: subscription.plan_id }).first();
  const customer = await db<CustomerRow>('customers').where({ id: subscription.customer_id }).first();
  if (!plan || !customer) throw new Error(`subscription ${subscriptionId} references a missing plan or customer`);
  return { subscription, plan, customer };
}

export async function findSubscription(db: Knex | Knex.Transaction, subscriptionId: string): Promise<SubscriptionRow | undefined> {
  return db<SubscriptionRow>('subscriptions').where({ id: subscriptionId }).first();
}

/** Whether the subscription exists and is the customer's (a customer usage token reaches only its own). */
export async function subscriptionBelongsTo(db: Knex | Knex.Transaction, subscriptionId: string, customerId: string): Promise<boolean> {
  return (await db<SubscriptionRow>('subscriptions').where({ id: subscriptionId, customer_id: customerId }).first('id')) !== undefined;
}

export interface NewSubscription {
  readonly id: string;
  readonly customerId: string;
  readonly planId: string;
  readonly workflowId: string;
  readonly startAt: Date;
}

/** Inserts (and commits) a subscription as `scheduled`; its workflow is started afterwards (api/subscription-start.ts). */
export async function insertScheduledSubscription(db: Knex | Knex.Transaction, subscription: NewSubscription): Promise<SubscriptionRow> {
  const [inserted] = await db<SubscriptionRow>('subscriptions')
    .insert({
      id: subscription.id,
      customer_id: subscription.customerId,
      plan_id: subscription.planId,
      status: 'scheduled',
      workflow_id: subscription.workflowId,
      start_at: subscription.startAt,
    })
    .returning('*');
  return inserted;
}

/** Removes a subscription whose workflow never started (still `scheduled`, nothing billed); false if it moved on. */
export async function deleteUnstartedSubscription(db: Knex, subscriptionId: string): Promise<boolean> {
  return (await db('subscriptions').where({ id: subscriptionId, status: 'scheduled' }).delete()) > 0;
}

/** Subscription states whose workflow is waiting in a period and wants to hear about usage. */
const BILLING_STATUSES = ['active', 'past_due', 'pending_cancellation'];

export type BillingSubscription = Pick<SubscriptionRow, 'id' | 'customer_id' | 'workflow_id' | 'current_period_start' | 'current_period_end'>;

/** The customers' subscriptions that are inside a billing period (active, past due or pending cancellation). */
export async function billingSubscriptionsOf(db: Knex | Knex.Transaction, customerIds: readonly string[]): Promise<BillingSubscription[]> {
  return db<SubscriptionRow>('subscriptions')
    .whereIn('customer_id', customerIds)
    .whereIn('status', BILLING_STATUSES)
    .select('id', 'customer_id', 'workflow_id', 'current_period_start', 'current_period_end');
}

/**
 * Workflow ids of the customer's subscriptions waiting on a payment: past due or suspended, canceled with an open
 * invoice whose next dunning attempt is announced (collected after the end), or, whatever the status, with an open
 * invoice to collect: a charge at the gateway when the new payment method arrived read the old one, and its decline
 * (an expired card: not retryable) then suspended a subscription whose new card nobody had told it of.
 */
export async function unpaidSubscriptionWorkflowIds(db: Knex | Knex.Transaction, customerId: string, now: Date = new Date()): Promise<string[]> {
  const rows: Pick<SubscriptionRow, 'workflow_id'>[] = await db<SubscriptionRow>('subscriptions as s')
    .where('s.customer_id', customerId)
    .where((waiting) =>
      waiting
        .whereIn('s.status', ['past_due', 'suspended'])
        .orWhere((ended) =>
          ended
            .where('s.status', 'canceled')
            .whereExists(db('invoices as i').whereRaw(`i.subscription_id = s.id AND i.status = 'open' AND ${nextAttemptAnnouncedSql('i')}`, [now]).select(db.raw('1'))),
        )
        .orWhere((collecting) =>
          collecting
            .whereNot('s.status', 'canceled')
            .whereExists(db('invoices as i').whereRaw(`i.subscription_id = s.id AND i.status = 'open' AND i.kind <> 'credit_note' AND i.total > 0`).select(db.raw('1'))),
        ),
    )
    .select('s.workflow_id');
  return rows.map((row) => row.workflow_id);
}

/** A status the subscription's workflow moved to, as the workflow saw it. */
export interface SubscriptionStatusRecord {
  readonly subscriptionId: string;
  readonly status: string;
  readonly at: string;
  readonly reason: string | null;
  readonly trialEnd: string | null;
  readonly usageBlocked: boolean;
  readonly movedPeriodEnd?: { readonly from: string; readonly to: string };
  /** Leaving `canceled` (a win-back restart): where the restarted run bills from (contract/subscription.ts). */
  readonly serviceResumesAt?: string;
}

/** The status shown over the one the subscription stands in while a billing step waits for ops (workflows/subscription/attention.ts). */
const NEEDS_ATTENTION = 'needs_attention';

/** What the row says of the status the subscription stands in: its usage block, its cancellation and usage end. */
function standingColumns(trx: Knex.Transaction, change: SubscriptionStatusRecord): Record<string, unknown> {
  return {
    usage_blocked: change.usageBlocked,
    // Ingestion judges a block by the event's time (store/usage.ts usageAcceptance): from the block's start while it
    // lasts (a change that keeps it, suspended -> paused, keeps its start), then as a stretch kept for late events.
    // Every right-hand side reads the row before this update.
    usage_blocked_since: trx.raw('CASE WHEN ?::boolean THEN CASE WHEN usage_blocked THEN usage_blocked_since ELSE ?::timestamptz END END', [change.usageBlocked, change.at]),
    usage_blocked_stretches: trx.raw(
      `CASE WHEN usage_blocked AND NOT ?::boolean AND usage_blocked_since < ?::timestamptz
            THEN usage_blocked_stretches + tstzmultirange(tstzrange(usage_blocked_since, ?::timestamptz))
            ELSE usage_blocked_stretches END`,
      [change.usageBlocked, change.at, change.at],
    ),
    // A canceled subscription never applies its scheduled change, and a win-back restart starts without it
    // (workflows/subscription/offers.ts): the overlap check must not count it for the restarted subscription.
    ...(change.status === 'canceled' ? NO_SCHEDULED_CHANGE : {}),
    // Back to `canceled` from needs_attention (a charge after the end needed ops) keeps when and why it was canceled:
    // the change's own time and reason are the retry's ("charge_invoice succeeded on retry"). Any other status clears
    // them, so a win-back restart canceled again later records that cancellation.
    ...(change.status === 'canceled'
      ? {
          canceled_at: trx.raw('coalesce(canceled_at, ?::timestamptz)', [change.at]),
          cancel_reason: trx.raw('CASE WHEN canceled_at IS NULL THEN ?::text ELSE cancel_reason END', [change.reason]),
        }
      : { canceled_at: null, cancel_reason: null }),
    // Leaving `canceled` is a win-back restart: its usage is billed again, so the recorded end no longer holds. The
    // stretch from that end to where the restart bills from was billed by no invoice: it is kept as a service gap.
    ...(change.status !== 'canceled' && change.serviceResumesAt ? { service_gaps: serviceGapAdded(trx, change.serviceResumesAt) } : {}),
    // Leaving `pending_cancellation` for a status other than these two (past_due, suspended: an invoice of the period
    // in dunning) leaves the cancellation pending: paid, it ends the subscription at that period's end all the same
    // (workflows/subscription/collection.ts `statusWhenPaid`). Ingestion read that end from the status alone, so usage
    // stamped after it while dunning ran past it was accepted and never billed: the end is written down instead.
    ...(change.status === 'canceled'
      ? {}
      : {
          usage_ends_at: trx.raw(
            `CASE WHEN status = 'canceled' THEN NULL
                  WHEN usage_ends_at IS NULL AND status = 'pending_cancellation' AND ?::text <> 'active' THEN current_period_end
                  ELSE usage_ends_at END`,
            [change.status],
          ),
        }),
  };
}

/**
 * The row's service gaps plus [its usage end, `resumesAt`) when it leaves `canceled` (read before the update, as
 * every right-hand side is): the end ingestion refused from while canceled (`usageEndSql`), so the gap starts where
 * the last invoice's usage stopped. Nothing when the row was not canceled (a status change recorded again) or the
 * restart is not after the end (tstzrange refuses a reversed range).
 */
function serviceGapAdded(trx: Knex.Transaction, resumesAt: string): Knex.Raw {
  return trx.raw(
    `CASE WHEN status = 'canceled' AND ${usageEndSql('subscriptions')} < ?::timestamptz
          THEN service_gaps + tstzmultirange(tstzrange(${usageEndSql('subscriptions')}, ?::timestamptz))
          ELSE service_gaps END`,
    [resumesAt, resumesAt],
  );
}

/**
 * needs_attention overlays the standing status, which the workflow returns to when the step succeeds; meanwhile what
 * ingestion reads from that status must hold. Written as a status of its own, it unblocked a suspended (or paused,
 * rejecting) subscription's usage and, over `pending_cancellation` or `canceled`, dropped the usage end that those
 * statuses imply (store/usage.ts `usageEndSql`): usage stamped after the end was accepted, and the closing invoice,
 * stopping at the end, never billed it (nor was it late usage). It also erased when and why a canceled one ended.
 * So: the block stays, the implied end is written down (`usageEndSql` of the row itself), and the cancellation columns
 * are left as they are.
 */
function standingKeptWhileNeedsAttention(trx: Knex.Transaction, change: SubscriptionStatusRecord): Record<string, unknown> {
  return {
    usage_blocked: trx.raw('usage_blocked OR ?::boolean', [change.usageBlocked]),
    usage_blocked_since: trx.raw('CASE WHEN usage_blocked THEN usage_blocked_since WHEN ?::boolean THEN ?::timestamptz END', [change.usageBlocked, change.at]),
    usage_ends_at: trx.raw(usageEndSql('subscriptions')),
  };
}

/**
 * Mirrors a workflow status change into the row, with its audit record and customer-facing event, all in one
 * transaction. A change the row already shows writes nothing (a retried activity records it once).
 */
export async function mirrorSubscriptionStatus(db: Knex, change: SubscriptionStatusRecord): Promise<void> {
  await db.transaction(async (trx) => {
    if (change.movedPeriodEnd) await recordMovedPeriodEnd(trx, change.subscriptionId, change.movedPeriodEnd);
    const updated = await trx('subscriptions')
      .where({ id: change.subscriptionId })
      .where((query) =>
        change.status === NEEDS_ATTENTION
          ? query.whereNot({ status: change.status })
          : query.whereNot({ status: change.status }).orWhereNot({ usage_blocked: change.usageBlocked }),
      )
      .update({
        status: change.status,
        // The trial end is a fact recorded once, by the first run's `trialing`: a later run (rolled over or continued
        // as new) no longer knows it and sends null, which must not erase it at its first status change.
        ...(change.trialEnd ? { trial_end: new Date(change.trialEnd) } : {}),
        ...(change.status === NEEDS_ATTENTION ? standingKeptWhileNeedsAttention(trx, change) : standingColumns(trx, change)),
        updated_at: trx.fn.now(),
      });
    if (updated === 0) return; // already recorded by an earlier attempt
    await writeAudit(trx, {
      actor: 'workflow',
      action: `subscription.${change.status}`,
      subjectType: 'subscription',
      subjectId: change.subscriptionId,
      reason: change.reason,
      details: { at: change.at },
    });
    await enqueueOutboxEvent(trx, {
      eventType: `subscription.${change.status}`,
      aggregateType: 'subscription',
      aggregateId: change.subscriptionId,
      dedupeKey: `subscription.${change.status}:${change.subscriptionId}:${change.at}`,
      payload: { subscriptionId: change.subscriptionId, status: change.status, at: change.at, reason: change.reason },
    });
  });
}

/**
 * Records where the subscription's billable usage stops, as soon as its workflow decides the end and before the
 * usage grace window: ingestion refuses usage stamped from there on (store/usage.ts `usageAcceptance`), which the
 * closing invoice, stopping there, would never bill. Idempotent: a retried activity writes the same instant.
 */
export async function recordUsageEnd(db: Knex, subscriptionId: string, usageEndsAt: Date): Promise<void> {
  await db('subscriptions').where({ id: subscriptionId }).update({ usage_ends_at: usageEndsAt, updated_at: db.fn.now() });
}

/** A plan change the workflow applied. */
export interface PlanSwitchRecord {
  readonly subscriptionId: string;
  readonly planId: string;
  readonly effective: 'immediate' | 'period_end';
  readonly at: string;
  readonly requestedBy: string;
}

/**
 * Points the subscription at its new plan version, with audit and event; a switch already made writes nothing. A
 * scheduled change (at the period's end) is also kept in plan_changes, with no period (store/plan-changes.ts): the
 * row's plan switches at the boundary, before the closed period's grace window ends, and readers that judge that
 * period meanwhile (its limits, its usage views, the wallet) need the plan it had. Before, only the audit log knew.
 */
export async function switchSubscriptionPlan(db: Knex, change: PlanSwitchRecord): Promise<void> {
  await db.transaction(async (trx) => {
    const before: { plan_id: string } | undefined = await trx('subscriptions').where({ id: change.subscriptionId }).forUpdate().first('plan_id');
    const updated = await trx('subscriptions')
      .where({ id: change.subscriptionId })
      .whereNot({ plan_id: change.planId })
      // Any switch drops a scheduled change (the workflow's `switchPlan`): applied at its boundary, or replaced by an
      // immediate change. The overlap check no longer counts it (store/metered-overlaps.ts).
      .update({ plan_id: change.planId, ...NO_SCHEDULED_CHANGE, updated_at: trx.fn.now() });
    if (updated === 0) return;
    if (change.effective === 'period_end' && before) {
      await trx('plan_changes')
        .insert({
          subscription_id: change.subscriptionId,
          request_key: `scheduled:${change.at}`,
          change_at: new Date(change.at),
          old_plan_id: before.plan_id,
          new_plan_id: change.planId,
          requested_by: change.requestedBy,
        })
        .onConflict()
        .ignore();
    }
    await writeAudit(trx, {
      actor: change.requestedBy,
      action: 'subscription.plan_changed',
      subjectType: 'subscription',
      subjectId: change.subscriptionId,
      details: { planId: change.planId, effective: change.effective, at: change.at },
    });
    await enqueueOutboxEvent(trx, {
      eventType: 'subscription.plan_changed',
      aggregateType: 'subscription',
      aggregateId: change.subscriptionId,
      dedupeKey: `subscription.plan_changed:${change.subscriptionId}:${change.at}`,
      payload: { ...change },
    });
  });
}

export interface SubscriptionEvent {
  readonly subscriptionId: string;
  readonly eventType: string;
  /** Same key, one event: a retried activity does not notify twice. */
  readonly dedupeKey: string;
  readonly payload: Record<string, unknown>;
}

/** Queues a customer-facing event about a subscription (trial ending, dunning step...) for the outbox to deliver. */
export async function enqueueSubscriptionEvent(db: Knex, event: SubscriptionEvent): Promise<void> {
  await db.transaction(async (trx) => {
    await enqueueOutboxEvent(trx, {
      eventType: event.eventType,
      aggregateType: 'subscription',
      aggregateId: event.subscriptionId,
      dedupeKey: event.dedupeKey,
      payload: { subscriptionId: event.subscriptionId, ...event.payload },
    });
  });
}

/**
 * The current period's end as a resume (or a paid suspension) moved it: before, the row kept the end stored when the
 * period opened until the next period invoice, so from that stale end on ingestion judged the period's usage
 * against a new limit window (the period billed past its limit), a cap set before the pause expired at the old end,
 * and the janitor reported the period as not closed. Only the period the row shows moves (its end is the one moved
 * from); a cap that held to that end holds to the new one. Idempotent.
 */
async function recordMovedPeriodEnd(trx: Knex.Transaction, subscriptionId: string, moved: { readonly from: string; readonly to: string }): Promise<void> {
  const to = new Date(moved.to);
  await trx('subscriptions')
    .where({ id: subscriptionId, current_period_end: new Date(moved.from) })
    .update({
      current_period_end: to,
      usage_capped_until: trx.raw('CASE WHEN usage_capped_until = current_period_end THEN ?::timestamptz ELSE usage_capped_until END', [to.toISOString()]),
      // The capped stretch (ingestion's, by the event's time) reaches the new end too: the moved time is the period's.
      usage_capped_stretches: trx.raw(
        `CASE WHEN usage_capped_until = current_period_end AND current_period_end < ?::timestamptz
              THEN usage_capped_stretches + tstzmultirange(tstzrange(current_period_end, ?::timestamptz))
              ELSE usage_capped_stretches END`,
        [to.toISOString(), to.toISOString()],
      ),
      // A pending cancellation's end written down while an invoice was in dunning or a step needed attention
      // (`standingColumns`, `standingKeptWhileNeedsAttention`) is the period's end: it moves with it, as the
      // cancellation does (a paid suspension gives its time back, then the cancellation pends again).
      usage_ends_at: trx.raw(`CASE WHEN usage_ends_at = current_period_end AND status <> 'canceled' THEN ?::timestamptz ELSE usage_ends_at END`, [to.toISOString()]),
    });
}
