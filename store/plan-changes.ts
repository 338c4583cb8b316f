/**
 * Immediate plan changes keyed by the request that asked for them (see migrations/0330_create_plan_changes.ts), with
 * the period they cut. Changes scheduled for a period's end are kept here too (store/subscriptions.ts
 * `switchSubscriptionPlan`, request key `scheduled:<boundary>`), with no period: they cut no stretch and no
 * allowance, but they say which plan the closed period had while its grace window is open.
 */
import Decimal from 'decimal.js';
import type { Knex } from 'knex';
import { rateDimensionalUsage } from '../domain/dimensions';
import { Dec, toDecimal } from '../domain/money';
import { allowanceShare, WHOLE_PERIOD, type PeriodShare, type SplitPeriod } from '../domain/allowances';
import { PlanSettings, usageCharges } from '../domain/plan-terms';
import type { Charge } from '../domain/rating';
import { reachedHardCap } from '../domain/spending';
import type { PlanRow } from './catalog';
import { usageInvoicedWithinPeriod } from './spending-alerts';
import { capUsageUntil, liftUsageCap } from './subscription-billing';
import { openUsageForCharges } from './usage-preview';

export interface PlanChangeRow {
  id: string;
  subscription_id: string;
  request_key: string;
  change_at: Date;
  old_plan_id: string;
  new_plan_id: string;
  requested_by: string;
  /** The billing period the change split (null on changes recorded before migration 0630). */
  period_start: Date | null;
  period_end: Date | null;
  created_at: Date;
}

export interface PlanChangeIntent {
  readonly subscriptionId: string;
  readonly requestKey: string;
  /** The instant the caller proposes (workflow time); the stored one wins for a request already recorded. */
  readonly changeAt: Date;
  readonly oldPlanId: string;
  readonly newPlanId: string;
  readonly requestedBy: string;
  readonly periodStart?: string;
  readonly periodEnd?: string;
}

/**
 * Records the change once per (subscription, request key) and returns the stored row: a repeat of the same request
 * gets the instant chosen the first time. A new change never shares an instant with an earlier one of the same
 * subscription (it moves 1 ms past the latest), so each change keeps its own proration invoice.
 */
export async function recordPlanChangeOnce(db: Knex, intent: PlanChangeIntent): Promise<PlanChangeRow> {
  return db.transaction(async (trx) => {
    // Serializes the subscription's changes, so the latest instant read below stays the latest.
    await trx('subscriptions').where({ id: intent.subscriptionId }).forUpdate().first('id');
    const existing = await trx<PlanChangeRow>('plan_changes').where({ subscription_id: intent.subscriptionId, request_key: intent.requestKey }).first();
    if (existing) {
      if (await supersededSince(trx, existing, intent)) throw new PlanChangeAlreadyMade(existing);
      return existing;
    }
    const latest = await trx<PlanChangeRow>('plan_changes').where({ subscription_id: intent.subscriptionId }).max<{ max: Date | null }>('change_at as max').first();
    const after = latest?.max ? latest.max.getTime() + 1 : -Infinity;
    const changeAt = new Date(Math.max(intent.changeAt.getTime(), after));
    const [row] = await trx<PlanChangeRow>('plan_changes')
      .insert({
        subscription_id: intent.subscriptionId,
        request_key: intent.requestKey,
        change_at: changeAt,
        old_plan_id: intent.oldPlanId,
        new_plan_id: intent.newPlanId,
        requested_by: intent.requestedBy,
        period_start: intent.periodStart ? new Date(intent.periodStart) : null,
        period_end: intent.periodEnd ? new Date(intent.periodEnd) : null,
      })
      .returning('*');
    // In the transaction that records the change: a retry that finds the row recorded finds the cap judged too.
    await judgeUsageCapUnderNewPlan(trx, row);
    return row;
  });
}

/**
 * A repeat of a request whose change was made and then left behind: a later change was recorded since, or the
 * subscription has moved on to another period (a scheduled change may have switched the plan there). A retried
 * workflow task repeats its own request in the same period with no change after it; a repeat that is not one is the
 * caller retrying the request in a later workflow run (Temporal answers a repeated update id with its first outcome
 * only within one run: a continue-as-new forgets it). Its stored instant, long past, came back: the stretch to close
 * was inverted (nothing closed), the first proration invoice was found, and the plan was switched again with no
 * proration, the usage stretch moved back to that instant: the next period invoice found the usage closure of that
 * old instant (already billed) and billed 0.00 for the open usage.
 */
export class PlanChangeAlreadyMade extends Error {
  constructor(readonly change: PlanChangeRow) {
    super(`plan change ${change.request_key} was made at ${change.change_at.toISOString()} and a later change or period has superseded it`);
    this.name = 'PlanChangeAlreadyMade';
  }
}

/** The failure type the activity raises for it (api/routes/subscription-lifecycle.ts answers the first outcome). */
export const PLAN_CHANGE_ALREADY_MADE = 'plan_change_already_made';

async function supersededSince(trx: Knex.Transaction, existing: PlanChangeRow, intent: PlanChangeIntent): Promise<boolean> {
  const otherPeriod = existing.period_start !== null && intent.periodStart !== undefined && existing.period_start.getTime() !== new Date(intent.periodStart).getTime();
  if (otherPeriod) return true;
  const later = await trx('plan_changes').where({ subscription_id: existing.subscription_id }).andWhere('change_at', '>', existing.change_at).first('id');
  return later !== undefined;
}

/** The change a request made (its update id is the request key), if it made one. */
export async function findPlanChangeByRequest(db: Knex, subscriptionId: string, requestKey: string): Promise<PlanChangeRow | undefined> {
  return db<PlanChangeRow>('plan_changes').where({ subscription_id: subscriptionId, request_key: requestKey }).first();
}

/**
 * A plan's hard cap is per period and the plan's own (set by the spending check; ingestion refuses the usage
 * stamped in a capped period, `usage_capped_stretches`). The spending check runs only on usage, which the cap
 * refuses, so nothing lifted a cap after an immediate change to a plan with a higher cap or none: the customer's
 * usage was refused for the rest of the period on a plan that allows it. Judged again here, under the new plan,
 * against what the period has spent: the usage proration invoices billed earlier in the period, the open stretch the
 * change closes (rated under the old plan, as its proration invoice will bill it) and any usage already stamped after
 * the change (under the new plan). Reached: capped until the period's end at once (a downgrade to a cap already
 * passed); not reached (or no cap): lifted from the change's instant (usage stamped before it stays refused). Inside
 * the usage grace window of a period the database does not show yet (its end unknown here) a cap is only lifted;
 * the next spending check sets one.
 */
async function judgeUsageCapUnderNewPlan(trx: Knex.Transaction, change: PlanChangeRow): Promise<void> {
  const subscription: { customer_id: string; current_period_start: Date | null; current_period_end: Date | null } | undefined = await trx('subscriptions')
    .where({ id: change.subscription_id })
    .first('customer_id', 'current_period_start', 'current_period_end');
  if (!subscription) return;
  const newPlan = await trx<PlanRow>('plans').where({ id: change.new_plan_id }).first();
  const oldPlan = await trx<PlanRow>('plans').where({ id: change.old_plan_id }).first();
  if (!newPlan || !oldPlan) return;
  const hardCap = ((newPlan.settings ?? {}) as PlanSettings).hardCap;
  if (hardCap === undefined) return liftUsageCap(trx, change.subscription_id, change.change_at);
  const { current_period_start: shownStart, current_period_end: shownEnd } = subscription;
  if (!shownStart || !shownEnd) return;
  const inShownPeriod = shownStart <= change.change_at && change.change_at < shownEnd;
  // In the grace window the period started at the shown one's end.
  const periodStart = inShownPeriod ? shownStart : shownEnd;
  const stretchStart = await latestStretchStartBefore(trx, change, periodStart);
  const rated = async (plan: PlanRow, from: Date, to: Date): Promise<Decimal> => {
    const charges = usageCharges(plan.charges as Charge[]);
    if (charges.length === 0 || from >= to) return new Dec(0);
    // On the transaction's connection: a second one per change, taken while this one waits, could exhaust the pool.
    const usage = await openUsageForCharges(trx, subscription.customer_id, charges, plan.currency, from, to);
    return toDecimal(rateDimensionalUsage({ currency: plan.currency, charges, usage }).usageTotal);
  };
  const far = new Date(change.change_at.getTime() + 366 * 86_400_000);
  const spend = toDecimal(await usageInvoicedWithinPeriod(trx, change.subscription_id, periodStart, stretchStart))
    .plus(await rated(oldPlan, stretchStart, change.change_at))
    .plus(await rated(newPlan, change.change_at, inShownPeriod ? shownEnd : far));
  if (!reachedHardCap(spend.toString(), hardCap)) return liftUsageCap(trx, change.subscription_id, change.change_at);
  if (inShownPeriod) await capUsageUntil(trx, change.subscription_id, { from: shownStart, until: shownEnd });
}

/** Where the stretch this change closes opened: the period's start, or the latest earlier change after it. */
async function latestStretchStartBefore(trx: Knex.Transaction, change: PlanChangeRow, periodStart: Date): Promise<Date> {
  const row = await trx('plan_changes')
    .where({ subscription_id: change.subscription_id })
    .andWhere('change_at', '<', change.change_at)
    .max<{ latest: Date | null }>('change_at as latest')
    .first();
  return row?.latest && row.latest > periodStart ? row.latest : periodStart;
}

/**
 * Where the open usage stretch starts at the latest: the period's start, or the last plan change after it (an
 * immediate one's proration invoice billed the usage before it; a scheduled one at a boundary starts the period the
 * workflow is in, while the row may still show the one before). What the threshold checks and the API's early
 * spending check count from; the usage views and the wallet judge the shown period with `openStretchOf`.
 */
export async function latestStretchStart(db: Knex | Knex.Transaction, subscriptionId: string, periodStart: Date): Promise<Date> {
  const row = await db('plan_changes').where({ subscription_id: subscriptionId }).max<{ latest: Date | null }>('change_at as latest').first();
  return row?.latest && row.latest > periodStart ? row.latest : periodStart;
}

/** Where the open usage of a subscription's shown period is counted from, and the plan version that rates it. */
export interface OpenStretch {
  readonly from: Date;
  /** The plan in force until the period's end when a later change has switched the subscription already; else null: the subscription's plan. */
  readonly planId: string | null;
}

/**
 * The open usage stretch of the period a subscription shows (current_period_start/end), as the period's invoice will
 * bill it: from the latest immediate plan change inside that period (its proration invoice billed the usage before
 * it), rated under the plan in force until the period's end.
 *
 * The shown period is the one the last opening invoice opened, so it is still shown through the grace window after
 * its end, while its usage waits to be closed onto the next period invoice at the plan in force in it. A plan
 * change made inside that window lies after the shown period's end and starts the next period's stretch: counted
 * from it (as `latestStretchStart` does), the shown period's window was inverted and its usage showed as 0 (0.00
 * where the invoice billed 1.00), and rated at the new plan. So a change at or after the period's end moves neither
 * the start nor the plan: the plan is the one that change left (the earliest such change's old plan).
 */
export async function openStretchOf(db: Knex | Knex.Transaction, subscriptionId: string, period: { readonly start: Date; readonly end: Date }): Promise<OpenStretch> {
  const changes: Pick<PlanChangeRow, 'change_at' | 'old_plan_id'>[] = await db('plan_changes')
    .where({ subscription_id: subscriptionId })
    .andWhere('change_at', '>', period.start)
    .orderBy('change_at')
    .select('change_at', 'old_plan_id');
  const within = changes.filter((change) => change.change_at < period.end);
  const after = changes.find((change) => change.change_at >= period.end);
  return { from: within.length ? within[within.length - 1].change_at : period.start, planId: after?.old_plan_id ?? null };
}

/**
 * The share of its billing period's allowances a usage stretch gets (domain/allowances.ts): cut by the immediate
 * plan changes that start or end it, from the period each recorded (the fractions left at its two ends, which it
 * shares with the stretches before and after it). The whole period when none does (or it was recorded before
 * changes kept their period). `end` null: an open stretch, counted to its period's end.
 */
export async function allowanceShareOf(db: Knex | Knex.Transaction, subscriptionId: string, stretch: { readonly start: Date | string; readonly end: Date | string | null }): Promise<PeriodShare> {
  const start = new Date(stretch.start);
  const end = stretch.end === null ? null : new Date(stretch.end);
  const rows: Pick<PlanChangeRow, 'change_at' | 'period_start' | 'period_end'>[] = await db('plan_changes')
    .where({ subscription_id: subscriptionId })
    .whereNotNull('period_start')
    .whereIn('change_at', end ? [start, end] : [start])
    .select('change_at', 'period_start', 'period_end');
  const periodOf = (row: (typeof rows)[number]): SplitPeriod => ({ start: row.period_start!, end: row.period_end! });
  const startedBy = rows.find((row) => row.change_at.getTime() === start.getTime());
  const endedBy = end ? rows.find((row) => row.change_at.getTime() === end.getTime()) : undefined;
  return allowanceShare({ start }, { ...(startedBy ? { startedBy: periodOf(startedBy) } : {}), ...(endedBy ? { endedBy: { at: endedBy.change_at, period: periodOf(endedBy) } } : {}) });
}

/** allowanceShareOf for the stretch a usage closure closed (what re-rating and reversal credits rate again). */
export async function closureAllowanceShare(db: Knex | Knex.Transaction, closeId: string): Promise<PeriodShare> {
  const closure: { subscription_id: string; period_start: Date; period_end: Date } | undefined = await db('usage_period_closures')
    .where({ id: closeId })
    .first('subscription_id', 'period_start', 'period_end');
  return closure ? allowanceShareOf(db, closure.subscription_id, { start: closure.period_start, end: closure.period_end }) : WHOLE_PERIOD;
}
