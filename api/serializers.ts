/** Rows to JSON: money as decimal strings with the currency's minor digits, instants as ISO strings. */
import { planFeatures } from '../domain/entitlements';
import { formatMoney, toDecimal } from '../domain/money';
import { DEFAULT_USAGE_GRACE_PERIOD, PlanSettings } from '../domain/plan-terms';
import { usageThresholdsOf } from '../domain/progressive-billing';
import type { Charge } from '../domain/rating';
import type { DimensionalCharge } from '../domain/dimensions';
import type { InvoiceLineRow, InvoiceRow } from '../store/invoices';
import type { PlanRow } from '../store/catalog';
import type { CustomerRow } from '../store/customers';
import type { SubscriptionRow } from '../store/subscriptions';
import type { UncoveredBefore } from '../store/uncovered-usage';

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);
const money = (value: string, currency: string): string => formatMoney(toDecimal(value), currency);
/** NUMERIC(30,12) quantities lose their padding zeros: "3.000000000000" -> "3". */
const quantity = (value: string): string => toDecimal(value).toString();

export function customerJson(row: CustomerRow) {
  return {
    id: row.id,
    external_id: row.external_id,
    name: row.name,
    email: row.email,
    currency: row.currency,
    payment_method: row.payment_method,
    created_at: iso(row.created_at),
  };
}

export function planJson(row: PlanRow) {
  return {
    id: row.id,
    code: row.code,
    version: row.version,
    name: row.name,
    currency: row.currency,
    billing_interval: row.billing_interval,
    trial_period: row.trial_period,
    flat_fee: money(row.flat_fee, row.currency),
    charges: (row.charges as Charge[]).map((charge) => ({
      metric_code: charge.metricCode,
      display_name: charge.displayName ?? null,
      price: charge.price,
      included_units: charge.includedUnits ?? null,
      min_amount: charge.minAmount ?? null,
      max_amount: charge.maxAmount ?? null,
      first_tier_fee_at_zero_usage: charge.firstTierFeeAtZeroUsage ?? false,
      ...dimensionsJson(charge),
    })),
    credit_bucket: (row.settings as PlanSettings).creditBucket ?? null,
    minimum_commitment: (row.settings as PlanSettings).minimumCommitment ?? null,
    commitment_includes_fees: (row.settings as PlanSettings).commitmentIncludesFees ?? false,
    usage_grace_period: (row.settings as PlanSettings).usageGracePeriod ?? DEFAULT_USAGE_GRACE_PERIOD,
    features: planFeatures(row.settings).map((feature) =>
      feature.kind === 'metered'
        ? { code: feature.code, kind: feature.kind, metric_code: feature.metricCode, limit: feature.limit, enforcement: feature.enforcement ?? 'hard' }
        : { code: feature.code, kind: feature.kind },
    ),
    dispute_window: (row.settings as { disputeWindow?: string }).disputeWindow ?? null,
    usage_thresholds: usageThresholdsOf(row.settings),
    created_at: iso(row.created_at),
  };
}

export function subscriptionJson(row: SubscriptionRow, plan: PlanRow) {
  return {
    id: row.id,
    customer_id: row.customer_id,
    plan: { id: plan.id, code: plan.code, version: plan.version },
    status: row.status,
    workflow_id: row.workflow_id,
    start_at: iso(row.start_at),
    trial_end: iso(row.trial_end),
    current_period_start: iso(row.current_period_start),
    current_period_end: iso(row.current_period_end),
    canceled_at: iso(row.canceled_at),
    cancel_reason: row.cancel_reason,
    created_at: iso(row.created_at),
  };
}

/**
 * The `uncovered_usage` field of a started subscription's answer (POST /v1/subscriptions, each imported row): spread
 * into the answer, it is absent when the start leaves nothing unbilled.
 */
export function uncoveredUsageJson(uncovered: UncoveredBefore): { uncovered_usage?: { events: number; earliest: string } } {
  return uncovered.earliest !== null ? { uncovered_usage: { events: uncovered.events, earliest: uncovered.earliest.toISOString() } } : {};
}

export function invoiceLineJson(row: InvoiceLineRow, currency: string) {
  return {
    id: row.id,
    position: row.position,
    kind: row.kind,
    description: row.description,
    metric_code: row.metric_code,
    quantity: quantity(row.quantity),
    amount: money(row.amount, currency),
    period_start: iso(row.period_start),
    period_end: iso(row.period_end),
    breakdown: row.breakdown,
  };
}

export function invoiceJson(row: InvoiceRow, lines?: readonly InvoiceLineRow[]) {
  return {
    id: row.id,
    number: row.number,
    customer_id: row.customer_id,
    subscription_id: row.subscription_id,
    kind: row.kind,
    status: row.status,
    currency: row.currency,
    period_start: iso(row.period_start),
    period_end: iso(row.period_end),
    total: money(row.total, row.currency),
    finalized_at: iso(row.finalized_at),
    paid_at: iso(row.paid_at),
    ...(lines ? { lines: lines.map((line) => invoiceLineJson(line, row.currency)) } : {}),
    ...thresholdJson(row),
  };
}

/** A dimensional charge's prices, in the API's snake_case; nothing for an ordinary charge. */
function dimensionsJson(charge: DimensionalCharge) {
  if (!charge.dimensions) return {};
  const { groupBy, prices, defaultPrice, unmatched } = charge.dimensions;
  return {
    dimensions: {
      group_by: groupBy,
      prices: prices.map((entry) => ({ match: entry.match, price: entry.price, included_units: entry.includedUnits ?? null })),
      default_price: defaultPrice ?? null,
      unmatched,
    },
  };
}

/** A threshold invoice names its threshold (progressive billing); other invoices carry no field. */
function thresholdJson(row: InvoiceRow) {
  const { threshold_index: index, threshold_amount: amount } = row as InvoiceRow & { threshold_index?: number | null; threshold_amount?: string | null };
  if (row.kind !== 'threshold' || index === null || index === undefined || amount === null || amount === undefined) return {};
  return { threshold: { index, amount: money(amount, row.currency) } };
}
