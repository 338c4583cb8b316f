/**
 * Reversals of outcomes that were already invoiced (docs/pricing.md): the period's usage as it was closed, rated
 * without the outcomes credited so far and without them plus the newly reversed ones; the difference, per line,
 * is credited on the next invoice. Rating both sides with the same function keeps tiers, the credit bucket and
 * the commitment right (a reversal inside the included credit gives nothing back). Pure.
 */
import { dimensionKey, rateDimensionalUsage, type DimensionalCharge, type DimensionalUsage, type DimensionValues } from './dimensions';
import { ratedLinesForPeriod, type DraftInvoiceLine, type PeriodBounds } from './invoice';
import { Dec, formatMoney, toDecimal } from './money';
import type { CostSegment } from './cost-tables';
import type { PeriodShare } from './allowances';
import { usageCharges } from './plan-terms';
import { invoicedAmounts, rerateDifference } from './rerating';
import { isWalletLine, keptAfterDiscounts } from './wallet-invoice';

/** What one reversed event had added to one metric's closed usage. */
export interface ReversedContribution {
  readonly metricCode: string;
  /** count: 1 per event; sum: the event's value. Other aggregations cannot be taken back event by event. */
  readonly aggregation: 'count' | 'sum';
  /** The event's numeric value (sum), or its per-event value for a percentage charge (count with a property). */
  readonly value: string | null;
  /** The event's timestamp: a cost_plus price credits it at the cost of the table that costed it. */
  readonly occurredAt?: string;
  /** The event's combination, for a metric with group_by. */
  readonly dimensions?: DimensionValues;
  readonly groupBy?: readonly string[];
}

/** The closed usage with these events' contributions taken out. */
export function withoutContributions(usage: readonly DimensionalUsage[], removed: readonly ReversedContribution[]): DimensionalUsage[] {
  return usage.map((metric) => {
    let current: DimensionalUsage = metric;
    for (const contribution of removed.filter((entry) => entry.metricCode === metric.metricCode)) {
      current = removeOne(current, contribution);
      if (current.groups && contribution.dimensions && contribution.groupBy) {
        const key = dimensionKey(contribution.dimensions, contribution.groupBy);
        current = { ...current, groups: current.groups.map((group) => (dimensionKey(group.dimensions, contribution.groupBy) === key ? removeOne(group, contribution) : group)) };
      }
    }
    return current;
  });
}

/**
 * The closed usage with these events' contributions added: the late events a re-rating billed into the period
 * after its close (the close's totals never counted them). The inverse of withoutContributions.
 */
export function withContributions(usage: readonly DimensionalUsage[], added: readonly ReversedContribution[]): DimensionalUsage[] {
  const result = [...usage];
  for (const contribution of added) {
    const at = result.findIndex((metric) => metric.metricCode === contribution.metricCode);
    let current: DimensionalUsage = at < 0 ? { metricCode: contribution.metricCode, quantity: '0', ...(contribution.value === null ? {} : { eventValues: [] }) } : result[at];
    current = addOne(current, contribution);
    if (contribution.dimensions && contribution.groupBy) {
      const key = dimensionKey(contribution.dimensions, contribution.groupBy);
      const groups = current.groups ?? [];
      const index = groups.findIndex((group) => dimensionKey(group.dimensions, contribution.groupBy) === key);
      const group = index < 0 ? addOne({ dimensions: contribution.dimensions, quantity: '0', ...(current.eventValues ? { eventValues: [] } : {}) }, contribution) : addOne(groups[index], contribution);
      current = { ...current, groups: index < 0 ? [...groups, group] : groups.map((existing, position) => (position === index ? group : existing)) };
    }
    if (at < 0) result.push(current);
    else result[at] = current;
  }
  return result;
}

function addOne<T extends { quantity: string; eventValues?: readonly string[]; costs?: readonly CostSegment[] }>(usage: T, contribution: ReversedContribution): T {
  const step = contribution.aggregation === 'count' ? new Dec(1) : toDecimal(contribution.value ?? '0');
  const quantity = toDecimal(usage.quantity).plus(step).toString();
  const costs = usage.costs ? { costs: withShareAdded(usage.costs, step, contribution.occurredAt) } : {};
  const eventValues = usage.eventValues && contribution.value !== null ? { eventValues: [...usage.eventValues, contribution.value] } : {};
  return { ...usage, quantity, ...eventValues, ...costs };
}

function removeOne<T extends { quantity: string; eventValues?: readonly string[]; costs?: readonly CostSegment[] }>(usage: T, contribution: ReversedContribution): T {
  const step = contribution.aggregation === 'count' ? new Dec(1) : toDecimal(contribution.value ?? '0');
  // Not floored here: a corrections sum (allow_negative) may run below 0 and come back above it as its negative
  // corrections are taken back; the rating floors it, as the close does (reversalCreditLines).
  const quantity = toDecimal(usage.quantity).minus(step).toString();
  const costs = usage.costs ? { costs: withoutShare(usage.costs, step, contribution.occurredAt) } : {};
  if (!usage.eventValues || contribution.value === null) return { ...usage, quantity, ...costs };
  const at = usage.eventValues.findIndex((value) => toDecimal(value).eq(toDecimal(contribution.value!)));
  const eventValues = at < 0 ? usage.eventValues : [...usage.eventValues.slice(0, at), ...usage.eventValues.slice(at + 1)];
  return { ...usage, quantity, eventValues, ...costs };
}

/**
 * The cost split without one event's units: taken from the share of the table in effect at the event's time (the
 * latest effectiveFrom at or before it; the uncosted share when none), so the credit is what the event was billed.
 */
function withoutShare(costs: readonly CostSegment[], step: Dec, occurredAt: string | undefined): CostSegment[] {
  const target = segmentAt(costs, occurredAt);
  if (target < 0) return [...costs];
  return costs.map((segment, index) => (index === target ? { ...segment, quantity: Dec.max(new Dec(0), toDecimal(segment.quantity).minus(step)).toFixed() } : segment));
}

/** The cost split with one event's units added to the share of the table in effect at its time (as withoutShare). */
function withShareAdded(costs: readonly CostSegment[], step: Dec, occurredAt: string | undefined): CostSegment[] {
  const target = segmentAt(costs, occurredAt);
  if (target < 0) return [...costs];
  return costs.map((segment, index) => (index === target ? { ...segment, quantity: toDecimal(segment.quantity).plus(step).toFixed() } : segment));
}

/** The index of the segment of the table in effect at `occurredAt` (-1: none of them). */
function segmentAt(costs: readonly CostSegment[], occurredAt: string | undefined): number {
  const at = occurredAt === undefined ? Number.POSITIVE_INFINITY : Date.parse(occurredAt);
  let target = -1;
  costs.forEach((segment, index) => {
    const from = segment.effectiveFrom === null ? Number.NEGATIVE_INFINITY : Date.parse(segment.effectiveFrom);
    const best = target < 0 ? undefined : costs[target].effectiveFrom;
    const bestFrom = best === undefined ? undefined : best === null ? Number.NEGATIVE_INFINITY : Date.parse(best);
    if (from <= at && (bestFrom === undefined || from >= bestFrom)) target = index;
  });
  return target;
}

export interface ReversalCreditInput {
  readonly currency: string;
  readonly charges: readonly DimensionalCharge[];
  readonly creditBucket?: string;
  readonly minimumCommitment?: string;
  readonly feesTowardCommitment?: string;
  /** The stretch's share of its period when a plan change cut it (rating.ts RatingInput.periodShare). */
  readonly periodShare?: PeriodShare;
  /** The period's usage as its close stored it (what its invoice billed). */
  readonly closedUsage: readonly DimensionalUsage[];
  /** Late events a carried-out re-rating billed into the period after its close: billed too, so counted in. */
  readonly billedLate?: readonly ReversedContribution[];
  readonly alreadyCredited: readonly ReversedContribution[];
  readonly newlyReversed: readonly ReversedContribution[];
  readonly period: PeriodBounds;
}

/** The usage as the close bills it: a sum (and each combination's) below 0 bills 0 (store/usage.ts aggregationSql). */
function flooredAtZero(usage: DimensionalUsage): DimensionalUsage {
  const floor = (quantity: string) => (toDecimal(quantity).isNegative() ? '0' : quantity);
  return { ...usage, quantity: floor(usage.quantity), ...(usage.groups ? { groups: usage.groups.map((group) => ({ ...group, quantity: floor(group.quantity) })) } : {}) };
}

/** Credit lines (negative) for the newly reversed outcomes of a closed period; empty when they change nothing. */
export function reversalCreditLines(input: ReversalCreditInput): DraftInvoiceLine[] {
  const rate = (usage: readonly DimensionalUsage[]) =>
    rateDimensionalUsage({ currency: input.currency, charges: usageCharges(input.charges), usage: usage.map(flooredAtZero), creditBucket: input.creditBucket, minimumCommitment: input.minimumCommitment, feesTowardCommitment: input.feesTowardCommitment, periodShare: input.periodShare });
  const billed = withContributions(input.closedUsage, input.billedLate ?? []);
  const before = withoutContributions(billed, input.alreadyCredited);
  const after = withoutContributions(before, input.newlyReversed);
  const billedBefore = ratedLinesForPeriod(rate(before).lines, input.period);
  const difference = rerateDifference(rate(after).lines, invoicedAmounts(billedBefore, []), input.currency, input.period);
  return difference.lines.map((line) => ({
    ...line,
    description: line.description.replace(/ \(correction\)$/, ' (reversed outcomes)'),
    breakdown: { ...line.breakdown, reversal: true },
  }));
}

/**
 * Splits a period's reversal credit lines (negative, net of any positive ones) at `settled` (a positive amount less
 * than their net credit): the negative lines, in order, up to `settled` (the one crossing it cut in two, any list
 * amount shared in proportion so the parts add up to the line; both keep its quantity, the usage as corrected, and
 * name it in `partOf`), and the rest. The unpaid invoice that
 * billed the period takes the first part off what it owes; the rest is credited as a whole credit is.
 */
export function splitCreditLines(lines: readonly DraftInvoiceLine[], settled: string, currency: string): { settled: DraftInvoiceLine[]; rest: DraftInvoiceLine[] } {
  let left = toDecimal(settled);
  const taken: DraftInvoiceLine[] = [];
  const rest: DraftInvoiceLine[] = [];
  for (const line of lines) {
    const amount = toDecimal(line.amount);
    if (!amount.isNegative() || !left.isPositive() || left.isZero()) {
      rest.push(line);
      continue;
    }
    const part = Dec.min(left, amount.abs());
    left = left.minus(part);
    if (part.eq(amount.abs())) {
      taken.push(line);
      continue;
    }
    const share = part.dividedBy(amount.abs());
    const listAmount = typeof line.breakdown.listAmount === 'string' ? toDecimal(line.breakdown.listAmount) : null;
    const takenList = listAmount && toDecimal(formatMoney(listAmount.times(share), currency));
    const partOf = { partOf: line.amount };
    taken.push({
      ...line,
      amount: formatMoney(part.negated(), currency),
      breakdown: { ...line.breakdown, ...partOf, ...(takenList ? { listAmount: formatMoney(takenList, currency) } : {}) },
    });
    rest.push({
      ...line,
      amount: formatMoney(amount.plus(part), currency),
      breakdown: { ...line.breakdown, ...partOf, ...(listAmount && takenList ? { listAmount: formatMoney(listAmount.minus(takenList), currency) } : {}) },
    });
  }
  return { settled: taken, rest };
}

/** The lines of a usage period's cost on an invoice: its usage, bucket, commitment true-up and threshold invoices' share. */
const USAGE_COST_KINDS: ReadonlySet<string> = new Set(['usage', 'credit', 'commitment_true_up', 'threshold_credit']);

/**
 * What an invoice asks in cash for one period's usage (`periodStart`): that usage's lines (not the wallet's, not
 * reversal credits of other periods) at the share its discounts leave, less what the wallet drew (prepaid credit pays
 * usage, never the fee). What a reversal's credit may settle of the invoice while it is unpaid: the rest of what it
 * owes is the fee, and the outcomes the wallet paid go back to it as on a paid invoice.
 */
export function usageLeftToPay(lines: readonly DraftInvoiceLine[], periodStart: string, currency: string): Dec {
  const start = new Date(periodStart).getTime();
  const ofPeriod = lines.filter((line) => USAGE_COST_KINDS.has(line.kind) && new Date(line.periodStart).getTime() === start && !isWalletLine(line) && line.breakdown?.reversal !== true);
  const billed = toDecimal(formatMoney(ofPeriod.reduce((sum, line) => sum.plus(toDecimal(line.amount)), new Dec(0)).times(keptAfterDiscounts(lines)), currency));
  const drawn = lines.filter((line) => isWalletLine(line) && 'walletGrantId' in line.breakdown).reduce((sum, line) => sum.plus(toDecimal(line.amount)), new Dec(0));
  return Dec.max(billed.plus(drawn), 0);
}
