/**
 * The credit lines an invoice carries for outcomes reversed after their period was invoiced (docs/pricing.md):
 * one set per affected period, computed by domain/reversal-credits.ts, and the reversals marked as credited in
 * the invoice's own transaction, so each is credited exactly once.
 */
import type { DimensionalCharge, DimensionalUsage } from '../domain/dimensions';
import { combinationOf } from '../domain/dimensions';
import type { DraftInvoiceLine } from '../domain/invoice';
import { commitmentTerms, type PlanSettings } from '../domain/plan-terms';
import { reversalCreditLines, type ReversedContribution } from '../domain/reversal-credits';
import { findMetricsByCode, findPlan, type MetricRow, type PlanRow } from './catalog';
import { invoicedReversals, markReversalsCredited, reversalsOfClosure, type InvoicedReversal } from './reversals';
import type { Transaction } from './transactions';
import type { MetricUsage } from './usage';
import { reversalCreditToWallet } from './wallet-draws';

export async function reversalCreditsFor(trx: Transaction, subscriptionId: string, customerId: string, creditedOn: string, fallbackPlan: PlanRow): Promise<DraftInvoiceLine[]> {
  const reversals = await invoicedReversals(trx, subscriptionId, customerId);
  if (reversals.length === 0) return [];
  const byClose = new Map<string, InvoicedReversal[]>();
  for (const reversal of reversals) byClose.set(reversal.closeId, [...(byClose.get(reversal.closeId) ?? []), reversal]);

  const lines: DraftInvoiceLine[] = [];
  for (const group of byClose.values()) {
    const { plan, period, creditLines } = await closureCreditLines(trx, group, fallbackPlan, (reversal) => !reversal.credited);
    lines.push(...creditLines);
    // What the wallet had paid for the period goes back to it first (docs/wallets.md).
    lines.push(...(await reversalCreditToWallet(trx, { subscriptionId, customerId, currency: plan.currency, creditedOn, period, creditLines })));
  }
  await markReversalsCredited(trx, reversals.filter((reversal) => !reversal.credited).map((reversal) => reversal.reversalRowId), creditedOn);
  return lines;
}

/**
 * Every credit the reversal path gives, or will give, for one closed period: all its outcomes reversed after the
 * close, credited yet or not, rated as the credits are (the closure's totals and plan). The credits given one
 * reversal at a time add up to exactly these lines. Re-rating counts them as already invoiced (a re-rating rates
 * the period without reversed outcomes; without them it credited those outcomes a second time).
 */
export async function reversalCreditsOfPeriod(trx: Transaction, closeId: string, fallbackPlan: PlanRow): Promise<DraftInvoiceLine[]> {
  const reversals = await reversalsOfClosure(trx, closeId);
  if (reversals.length === 0) return [];
  return (await closureCreditLines(trx, reversals, fallbackPlan, () => true)).creditLines;
}

/** One closure's credit lines for the reversals `isNew` picks, on top of the other (already credited) ones. */
async function closureCreditLines(trx: Transaction, group: readonly InvoicedReversal[], fallbackPlan: PlanRow, isNew: (reversal: InvoicedReversal) => boolean) {
  const closure = group[0];
  const plan = closure.planId ? await findPlan(trx, closure.planId) : fallbackPlan;
  const charges = plan.charges as DimensionalCharge[];
  const metrics = await findMetricsByCode(trx, [...new Set(charges.map((charge) => charge.metricCode))]);
  const contributions = (reversal: InvoicedReversal) => metrics.flatMap((metric) => contributionOf(metric, reversal));
  const settings = plan.settings as PlanSettings;
  const period = { start: closure.periodStart.toISOString(), end: closure.periodEnd.toISOString() };
  const creditLines = reversalCreditLines({
    currency: plan.currency,
    charges,
    creditBucket: settings.creditBucket,
    ...commitmentTerms(plan),
    closedUsage: Object.entries(closure.totals as Record<string, MetricUsage>).map(([metricCode, usage]) => ({ metricCode, ...usage }) as DimensionalUsage),
    alreadyCredited: group.filter((reversal) => !isNew(reversal)).flatMap(contributions),
    newlyReversed: group.filter(isNew).flatMap(contributions),
    period,
  });
  return { plan, period, creditLines };
}

/** What a reversed event had added to a metric: count and sum metrics only (a max or a latest cannot be undone). */
function contributionOf(metric: MetricRow, reversal: InvoicedReversal): ReversedContribution[] {
  if (metric.event_type !== reversal.eventType) return [];
  if (!Object.entries(metric.filters ?? {}).every(([name, value]) => reversal.properties[name] === value)) return [];
  if (metric.aggregation !== 'count' && metric.aggregation !== 'sum') return [];
  const raw = metric.property === null ? undefined : reversal.properties[metric.property];
  const value = raw === undefined || raw === null ? null : String(raw);
  if (metric.aggregation === 'sum' && value === null) return [];
  const groupBy = metric.group_by ?? [];
  return [
    {
      metricCode: metric.code,
      aggregation: metric.aggregation,
      value,
      occurredAt: reversal.occurredAt.toISOString(),
      ...(groupBy.length ? { dimensions: combinationOf(reversal.properties, groupBy), groupBy } : {}),
    },
  ];
}
