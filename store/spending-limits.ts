/**
 * A subscription's spend against its limits (the plan's credit-bucket alerts and hard cap, the customer's budget):
 * measured the same way by the workflow's spending check (activities/spending.ts), which raises the alerts and
 * sets the cap, and by the API's coalescer (api/spending-signals.ts), which asks for that check as soon as
 * something is due instead of waiting for the next usage summary.
 */
import type { Knex } from 'knex';
import { rateDimensionalUsage } from '../domain/dimensions';
import { formatMoney, toDecimal } from '../domain/money';
import { PlanSettings, usageCharges } from '../domain/plan-terms';
import type { Charge } from '../domain/rating';
import { CrossedThreshold, crossedThresholds, reachedHardCap, SpendingLimit } from '../domain/spending';
import { usageInvoicedWithinPeriod } from './spending-alerts';
import { allowanceShareOf } from './plan-changes';
import { stretchCreditBucket } from '../domain/allowances';
import type { SubscriptionContext } from './subscriptions';
import { openUsageForCharges } from './usage-preview';

const DEFAULT_BUDGET_THRESHOLDS = ['50', '80', '100'];

/** A limit with the spend it is measured against and the period its alerts are keyed by. */
export interface MeasuredLimit {
  readonly limit: SpendingLimit;
  readonly spend: string;
  readonly periodStart: Date;
}

export interface SpendingMeasure {
  /** The open stretch's rated usage (what the credit bucket's alerts are measured against). */
  readonly spend: string;
  readonly limits: readonly MeasuredLimit[];
  readonly capReached: boolean;
  /** The start of the billing period the hard cap is measured in: a reached cap refuses usage stamped from there. */
  readonly periodStart: Date;
}

/** The start of the billing period the open stretch starting at `from` lies in: the stretch's own start when unsure. */
function billingPeriodStartOf(subscription: { current_period_start: Date | null; current_period_end: Date | null }, from: Date): Date {
  const start = subscription.current_period_start;
  const end = subscription.current_period_end;
  return start && end && start <= from && from < end ? start : from;
}

/**
 * Rates the open stretch [from, until) (the same rating as the invoice) and measures each limit. A customer's budget
 * is per billing period (PUT /v1/subscriptions/:id/budget), while `from` is the open usage stretch, which an
 * immediate plan change restarts mid-period: so the budget counts from the period's start (the usage the proration
 * invoice already billed, plus the open usage) and its alerts are keyed by the period; so does the plan's hard cap,
 * which is per period too. The plan's credit bucket is granted afresh to each stretch (rating applies it per
 * stretch), so its alerts stay per stretch.
 */
export async function measureSpending(db: Knex, context: SubscriptionContext, from: Date, until: Date): Promise<SpendingMeasure> {
  const { plan, subscription, customer } = context;
  const settings = plan.settings as PlanSettings;
  const charges = usageCharges(plan.charges as Charge[]);
  const usage = await openUsageForCharges(db, customer.id, charges, plan.currency, from, until);
  const spend = rateDimensionalUsage({ currency: plan.currency, charges, usage }).usageTotal;
  const row = subscription as typeof subscription & { budget_amount: string | null; alert_thresholds: string[] | null };
  const periodStart = billingPeriodStartOf(subscription, from);
  // The period's spend: the budget and the hard cap are per period (an immediate plan change must not reset them).
  const measuresPeriod = row.budget_amount !== null || settings.hardCap !== undefined;
  const periodSpend = measuresPeriod && periodStart < from
    ? formatMoney(toDecimal(spend).plus(toDecimal(await usageInvoicedWithinPeriod(db, subscription.id, periodStart, from))), plan.currency)
    : spend;
  // The stretch's share of the bucket when a plan change cut the period: the alerts are shares of what it includes.
  const stretchBucket = async () => stretchCreditBucket(settings, plan.currency, await allowanceShareOf(db, subscription.id, { start: from, end: null }));
  const limits: MeasuredLimit[] = [
    ...(settings.creditBucket && settings.creditAlertThresholds
      ? [{ limit: { basis: 'credit_bucket' as const, amount: (await stretchBucket()) ?? settings.creditBucket, thresholds: settings.creditAlertThresholds }, spend, periodStart: from }]
      : []),
    ...(row.budget_amount
      ? [{ limit: { basis: 'budget' as const, amount: row.budget_amount, thresholds: row.alert_thresholds ?? DEFAULT_BUDGET_THRESHOLDS }, spend: periodSpend, periodStart }]
      : []),
  ];
  return { spend, limits, capReached: reachedHardCap(periodSpend, settings.hardCap), periodStart };
}

/** Each threshold the measure crossed, with the limit and period it is keyed by. */
export function crossingsOf(measure: SpendingMeasure): Array<CrossedThreshold & { readonly spend: string; readonly periodStart: Date }> {
  return measure.limits.flatMap(({ limit, spend, periodStart }) => crossedThresholds(spend, [limit]).map((crossed) => ({ ...crossed, spend, periodStart })));
}

/**
 * What the spending check would do now, one name each: `cap` when the hard cap is reached and usage not capped yet,
 * and `<period>:<basis>:<threshold>:<limit>` for each crossed threshold not raised yet against the same limit in its
 * period. Empty when it has nothing to do.
 */
export async function pendingSpendingActions(db: Knex, context: SubscriptionContext, measure: SpendingMeasure, now: Date): Promise<string[]> {
  const cappedUntil = (context.subscription as typeof context.subscription & { usage_capped_until: Date | null }).usage_capped_until;
  const actions = measure.capReached && !(cappedUntil && cappedUntil > now) ? ['cap'] : [];
  const crossings = crossingsOf(measure);
  if (crossings.length === 0) return actions;
  const raised: { period_start: Date; basis: string; threshold: string; limit_amount: string }[] = await db('spending_alerts')
    .where({ subscription_id: context.subscription.id })
    .whereIn('period_start', [...new Set(crossings.map((crossing) => crossing.periodStart.getTime()))].map((ms) => new Date(ms)))
    .select('period_start', 'basis', 'threshold', 'limit_amount');
  const isRaised = (crossing: (typeof crossings)[number]): boolean =>
    raised.some(
      (row) =>
        row.period_start.getTime() === crossing.periodStart.getTime() &&
        row.basis === crossing.basis &&
        toDecimal(row.threshold).eq(toDecimal(crossing.threshold)) && // a row written before thresholds were canonical
        toDecimal(row.limit_amount).eq(toDecimal(crossing.limitAmount)),
    );
  for (const crossing of crossings) {
    if (!isRaised(crossing)) actions.push(`${crossing.periodStart.toISOString()}:${crossing.basis}:${crossing.threshold}:${crossing.limitAmount}`);
  }
  return actions;
}

/** Of these subscriptions, those with a limit: a customer budget, or a plan with credit alerts or a hard cap. */
export async function subscriptionsWithSpendingLimits(db: Knex, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows: { id: string }[] = await db('subscriptions as s')
    .join('plans as p', 'p.id', 's.plan_id')
    .whereIn('s.id', [...ids])
    .where((limited) => limited.whereNotNull('s.budget_amount').orWhereRaw(`jsonb_exists_any(p.settings, array['hardCap', 'creditAlertThresholds'])`))
    .select('s.id');
  return new Set(rows.map((row) => row.id));
}
