import type { Router } from 'express';
import { stretchAllowances } from '../../domain/allowances';
import { dimensionKey, rateDimensionalUsage } from '../../domain/dimensions';
import type { Charge } from '../../domain/rating';
import type { Database } from '../../store/database';
import type { PlanRow } from '../../store/catalog';
import { cachedPlan } from '../../store/read-caches';
import { setSpendingBudget } from '../../store/subscription-billing';
import type { SubscriptionRow } from '../../store/subscriptions';
import { allowanceShareOf, openStretchOf } from '../../store/plan-changes';
import { billedThresholds, listThresholdInvoices } from '../../store/threshold-invoices';
import { thresholdCreditLines, usageThresholdsOf } from '../../domain/progressive-billing';
import { listLateUsage } from '../../store/usage';
import { billedPastShownEnd, openUsageForCharges } from '../../store/usage-preview';
import { feeLinesOfPeriodInvoice, previewedRetentionDiscount } from '../../store/offers';
import { pendingReversalCredits } from '../../store/reversal-credits';
import { ratedLinesForPeriod } from '../../domain/invoice';
import { findSubscriptionOr404, ownSubscription } from './lookups';
import { ApiProblem } from '../problem';
import { budgetBody } from '../schemas';
import { formatMoney, minorUnitExponent, sumMoney, toDecimal } from '../../domain/money';
import { declareRoutes } from '../route-declarations';

/** A combination line's key with its dimensions in name order (how `amountOf` matches a usage group to it). */
function dimensionKeyOfLine(line: object): string | undefined {
  const dimensions = (line as { dimensions?: Readonly<Record<string, string>> }).dimensions;
  return dimensions && dimensionKey(dimensions);
}

/** Customer-facing usage: the current period so far, and late events waiting for re-rating. */
export function usageRouter(db: Database): Router {
  const routes = declareRoutes();

  async function findSubscription(id: string): Promise<{ subscription: SubscriptionRow; plan: PlanRow }> {
    const subscription = await findSubscriptionOr404(db, id);
    const plan = await cachedPlan(db, subscription.plan_id); // a plan version never changes: parsed once per process
    return { subscription, plan };
  }

  /** What the usage part of the period's invoice would be if it closed now (same rating function, same stretch), and its fee. */
  routes.get('/:id/usage', { allow: ['app', 'finance', 'customer_usage'], customerScope: ownSubscription(db) }, async (req, res) => {
    const subscription = await findSubscriptionOr404(db, req.params.id);
    const start = subscription.current_period_start;
    const end = subscription.current_period_end;
    if (!start || !end) {
      res.json({ subscription_id: subscription.id, period: null, usage: [], projected: null });
      return;
    }
    // From an immediate plan change within the period: its proration invoice billed the usage before it, and the
    // period's invoice bills from it. An event stamped before it that arrives later is late usage, on neither.
    // Only a change inside the shown period counts, and the plan is the one in force until its end: in the grace
    // window after the period a change there lies past its end (and has switched the plan already), and counting
    // from it showed the period's usage as 0 at the new plan (store/plan-changes.ts, openStretchOf).
    const stretch = await openStretchOf(db, subscription.id, { start, end });
    const plan = await cachedPlan(db, stretch.planId ?? subscription.plan_id); // a plan version never changes: parsed once per process
    const charges = plan.charges as Charge[];
    const from = stretch.from;
    const usage = await openUsageForCharges(db, subscription.customer_id, charges, plan.currency, from, end, billedPastShownEnd(subscription.status));
    const rated = rateDimensionalUsage({
      currency: plan.currency,
      charges: charges.filter((charge) => charge.price.model !== 'flat'),
      usage,
      // The stretch's share of the allowances when a plan change cut the period, as the invoice will apply them.
      ...stretchAllowances(plan, await allowanceShareOf(db, subscription.id, { start: from, end: null })),
    });
    // What threshold invoices of this stretch billed already: the period's invoice takes it back (a threshold_credit
    // line each), so the projection does too. Without them it told the customer 122.50 where the invoice billed 10.00.
    const thresholdCredits = usageThresholdsOf(plan.settings)
      ? thresholdCreditLines(billedThresholds(await listThresholdInvoices(db, subscription.id, from)), plan.currency, { start: from.toISOString(), end: end.toISOString() })
      : [];
    // The fee the invoice billing this usage bills in advance (the next period's, at the plan in force then; none on a
    // closing invoice): the page shows it beside `subtotal`, and a retention discount covers it with the usage.
    const span = { start: from.toISOString(), end: end.toISOString() };
    const feeLines = await feeLinesOfPeriodInvoice(db, subscription.id, end);
    // A retention discount the customer accepted is ONE line on the invoice that bills this usage (the period's invoice
    // opening at this period's end), over that invoice's fee and the usage together, rounded once (store/offers.ts):
    // the projection carries that line whole, so fee + subtotal is the invoice's total. Before the threshold credits,
    // which give back at full price what was billed in cash. Taken off the usage alone, the page showed 9.99 + 0.03
    // where the invoice billed 9.99 + 0.05 - 3.01 (30 % off).
    const { percentOff, discount } = await previewedRetentionDiscount(db, subscription.id, { lines: ratedLinesForPeriod(rated.lines, span), currency: plan.currency, span }, feeLines);
    // Outcomes of an invoiced period reversed since: the next invoice that bills usage credits them after its usage
    // lines, untouched by its own discount (activities/invoicing.ts), so the projection does too. Without them it said
    // 1.10 where the invoice billed 1.10 - 5.30 for an outcome reversed after its period was invoiced.
    const reversalCredits = await pendingReversalCredits(db, subscription.id, subscription.customer_id, plan, { periodStart: start.toISOString(), percentOff });
    const extraLines = [...reversalCredits, ...(discount ? [discount] : []), ...thresholdCredits];
    const subtotal = extraLines.length ? formatMoney(sumMoney([rated.subtotal, ...extraLines.map((line) => line.amount)].map(toDecimal)), plan.currency) : rated.subtotal;
    /** What a metric (or one combination of it) adds to the projected invoice: the sum of its usage lines, as rated. */
    const amountOf = (metricCode: string, dimensions?: Readonly<Record<string, string>>): { amount?: string } => {
      const key = dimensions && dimensionKey(dimensions);
      const lines = rated.lines.filter((line) => line.kind === 'usage' && line.metricCode === metricCode && (key === undefined || dimensionKeyOfLine(line) === key));
      return lines.length ? { amount: formatMoney(sumMoney(lines.map((line) => toDecimal(line.amount))), plan.currency) } : {};
    };
    res.json({
      subscription_id: subscription.id,
      currency: plan.currency,
      period: { start: start.toISOString(), end: end.toISOString() },
      as_of: new Date().toISOString(),
      usage: usage.map((metric) => ({
        metric_code: metric.metricCode,
        quantity: metric.quantity,
        event_count: metric.eventCount,
        ...(metric.openingLevel !== undefined ? { opening_level: metric.openingLevel } : {}),
        ...amountOf(metric.metricCode),
        ...(metric.groups
          ? { groups: metric.groups.map((group) => ({ dimensions: group.dimensions, quantity: group.quantity, event_count: group.eventCount, ...amountOf(metric.metricCode, group.dimensions) })) } : {}),
      })),
      projected: {
        fee: formatMoney(sumMoney(feeLines.map((line) => toDecimal(line.amount))), plan.currency),
        lines: [...rated.lines, ...extraLines],
        usage_total: rated.usageTotal,
        credit_applied: rated.creditApplied,
        credit_remaining: rated.creditRemaining,
        subtotal,
        unpriced: rated.unpriced,
      },
    });
  });

  /** A customer-set spending budget for each period, with alert thresholds in percent (default 50, 80, 100). */
  routes.put('/:id/budget', { allow: ['app'] }, async (req, res) => {
    const body = budgetBody.parse(req.body);
    const { subscription, plan } = await findSubscription(req.params.id);
    if (body.amount !== null && toDecimal(body.amount).decimalPlaces() > minorUnitExponent(plan.currency)) {
      throw new ApiProblem('validation_failed', `amount has more decimals than ${plan.currency} allows`);
    }
    await setSpendingBudget(db, subscription.id, body.amount, body.amount === null ? null : body.thresholds);
    res.json({ subscription_id: subscription.id, budget: body.amount, currency: plan.currency, thresholds: body.amount === null ? [] : body.thresholds });
  });

  routes.get('/:id/late-usage', { allow: ['app', 'finance'] }, async (req, res) => {
    const { subscription } = await findSubscription(req.params.id);
    const events = await listLateUsage(db, subscription.id, subscription.customer_id);
    res.json({
      data: events.map((event) => ({
        id: event.event_id,
        type: event.event_type,
        timestamp: event.occurred_at.toISOString(),
        received_at: event.received_at.toISOString(),
        properties: event.properties,
      })),
    });
  });

  return routes.router;
}
