import type { Router } from 'express';
import type { z } from 'zod';
import { chargeMetricMismatches } from '../../domain/charge-metric-fit';
import { commitmentTerms, DEFAULT_USAGE_GRACE_PERIOD, graceWindowFitsInterval, recurringCharges, usageCharges, type PlanSettings } from '../../domain/plan-terms';
import { ChargeDimensions, DimensionalCharge, isDimensionalCharge, validateChargeDimensions } from '../../domain/dimensions';
import type { PriceModel, UsagePriceModel } from '../../domain/price-models';
import { rateUsage, RatingError, validateCharge } from '../../domain/rating';
import { chargeBoundsDigitErrors, validateChargeOptions } from '../../domain/charge-options';
import { Dec, minorUnitExponent, roundMoney, sumMoney, toDecimal } from '../../domain/money';
import type { Database } from '../../store/database';
import { findMetricsByCode, findPlanVersion, listPlanVersions, MetricRow, publishPlanVersion } from '../../store/catalog';
import { ApiProblem } from '../problem';
import { createPlanBody } from '../schemas';
import { FeatureDefinition, LIMITABLE_AGGREGATIONS } from '../../domain/entitlements';
import { planJson } from '../serializers';
import { checkedUsageThresholds } from '../usage-thresholds';
import { ADMIN_ONLY, declareRoutes } from '../route-declarations';

const UNIQUE_VIOLATION = '23505';

type PlanBody = z.infer<typeof createPlanBody>;

function chargesOf(body: PlanBody): DimensionalCharge[] {
  return body.charges.map((charge) => {
    const dimensions = charge.dimensions ? dimensionsOf(charge.dimensions) : undefined;
    return {
      metricCode: charge.metric_code,
      ...(charge.display_name ? { displayName: charge.display_name } : {}),
      // A dimensional charge keeps a representative price of the same family, so code that only asks "is this
      // a usage charge, is it a percentage one?" reads it right; rating prices each combination on its own.
      price: (charge.price ?? charge.dimensions?.default_price ?? charge.dimensions?.prices[0]?.price ?? { model: 'per_unit', unitPrice: '0' }) as PriceModel,
      ...(charge.included_units ? { includedUnits: charge.included_units } : {}),
      ...(charge.min_amount !== undefined ? { minAmount: charge.min_amount } : {}),
      ...(charge.max_amount !== undefined ? { maxAmount: charge.max_amount } : {}),
      ...(charge.first_tier_fee_at_zero_usage !== undefined ? { firstTierFeeAtZeroUsage: charge.first_tier_fee_at_zero_usage } : {}),
      ...(dimensions ? { dimensions } : {}),
    };
  });
}

/** The API's snake_case dimensions as the charge stores them; group_by is filled from the metric on publish. */
function dimensionsOf(body: NonNullable<PlanBody['charges'][number]['dimensions']>): ChargeDimensions {
  return {
    groupBy: [],
    prices: body.prices.map((entry) => ({
      match: entry.match,
      price: entry.price as UsagePriceModel,
      ...(entry.included_units ? { includedUnits: entry.included_units } : {}),
    })),
    ...(body.default_price ? { defaultPrice: body.default_price as UsagePriceModel } : {}),
    unmatched: body.unmatched,
  };
}

/**
 * Copies each metric's group_by onto its dimensional charges and refuses what rating could not price: a charge
 * with dimensions on a metric without group_by, unknown dimensions, bad prices, and (with its own code) an
 * ambiguous catalog, where two matches would tie on some combination.
 */
function withDimensionsChecked(charges: DimensionalCharge[], metrics: ReadonlyMap<string, MetricRow>): DimensionalCharge[] {
  const problems: { path: string; message: string }[] = [];
  const ambiguities: { path: string; message: string }[] = [];
  const checked = charges.map((charge, index) => {
    if (!isDimensionalCharge(charge)) return charge;
    const groupBy = metrics.get(charge.metricCode)?.group_by ?? [];
    const dimensions = { ...charge.dimensions, groupBy };
    for (const message of validateChargeDimensions(dimensions, groupBy)) {
      (message.startsWith('dimensions: ambiguous') ? ambiguities : problems).push({ path: `charges.${index}.dimensions`, message });
    }
    return { ...charge, dimensions };
  });
  if (problems.length) throw new ApiProblem('invalid_dimensions', `${problems.length} problem(s) in the plan's dimensional prices`, problems);
  if (ambiguities.length) throw new ApiProblem('ambiguous_dimension_prices', `${ambiguities.length} pair(s) of prices match the same usage equally`, ambiguities);
  return checked;
}

/**
 * min_amount/max_amount/first_tier_fee_at_zero_usage that do not fit their charge (domain/charge-options.ts),
 * bounds with more decimals than the currency, and options on a dimensional charge (not supported there yet:
 * each combination is rated as its own charge, so a bound would apply per combination, not per charge).
 */
function chargeOptionProblems(charge: DimensionalCharge, currency: string): string[] {
  const problems = [...validateChargeOptions(charge), ...chargeBoundsDigitErrors(charge, currency)];
  const hasOptions = charge.minAmount !== undefined || charge.maxAmount !== undefined || charge.firstTierFeeAtZeroUsage === true;
  if (hasOptions && isDimensionalCharge(charge)) problems.push('min_amount, max_amount and first_tier_fee_at_zero_usage are not supported on a dimensional charge yet');
  return problems;
}

/**
 * The recurring fees (flat_fee, flat charges) are billed as they are, so they are money in the currency's minor unit:
 * a fee of 10.005 USD would bill 10.01 while proration credits part of 10.005 (as for the credit bucket: a typo).
 */
function recurringFeeDigitProblems(body: PlanBody, charges: readonly DimensionalCharge[]): { path: string; message: string }[] {
  const exponent = minorUnitExponent(body.currency);
  const tooPrecise = (amount: string): boolean => toDecimal(amount).decimalPlaces() > exponent;
  const message = `must have at most ${exponent} decimals in ${body.currency}`;
  const fees = [{ path: 'flat_fee', amount: body.flat_fee }];
  charges.forEach((charge, index) => {
    if (charge.price.model === 'flat') fees.push({ path: `charges.${index}.price.amount`, amount: charge.price.amount });
  });
  return fees.filter((fee) => tooPrecise(fee.amount)).map((fee) => ({ path: fee.path, message: `${fee.path} ${message}` }));
}

/** Rejects prices the rating engine could not rate, before anything is stored; returns the charges to store. */
async function checkCharges(db: Database, body: PlanBody, charges: DimensionalCharge[]): Promise<DimensionalCharge[]> {
  const feeErrors = recurringFeeDigitProblems(body, charges);
  if (feeErrors.length) throw new ApiProblem('invalid_price', `${feeErrors.length} recurring fee(s) with more decimals than ${body.currency} has`, feeErrors);
  const optionErrors = charges.flatMap((charge, index) => chargeOptionProblems(charge, body.currency).map((message) => ({ path: `charges.${index}`, message })));
  if (optionErrors.length) throw new ApiProblem('invalid_charge_options', `${optionErrors.length} problem(s) in the plan's charge options`, optionErrors);
  if (body.commitment_includes_fees && body.minimum_commitment === undefined) {
    throw new ApiProblem('validation_failed', 'commitment_includes_fees needs a minimum_commitment', [{ path: 'commitment_includes_fees', message: 'needs a minimum_commitment' }]);
  }
  const errors = charges.flatMap((charge, index) =>
    validateCharge(charge).map((message) => ({ path: `charges.${index}.${message.split(' ')[0]}`, message })),
  );
  if (errors.length) throw new ApiProblem('invalid_price', `${errors.length} problem(s) in the plan's charges`, errors);

  const codes = [...new Set(charges.map((charge) => charge.metricCode))];
  const metrics = await findMetricsByCode(db, codes);
  const known = new Map(metrics.map((metric) => [metric.code, { ...metric, allowNegative: metric.allow_negative }]));
  const unknown = codes.filter((metricCode) => !known.has(metricCode));
  if (unknown.length) throw new ApiProblem('metric_not_found', `unknown billable metric(s): ${unknown.join(', ')}`);

  // A charge its metric cannot feed would fail at every period close; refuse it now.
  const mismatches = chargeMetricMismatches(charges, known);
  if (mismatches.length) {
    throw new ApiProblem(
      'charge_metric_mismatch',
      `${mismatches.length} charge(s) do not fit their metric`,
      mismatches.map(({ index, message }) => ({ path: `charges.${index}.metric_code`, message })),
    );
  }

  const checked = withDimensionsChecked(charges, new Map(metrics.map((metric) => [metric.code, metric])));

  let idle: ReturnType<typeof rateUsage>;
  try {
    // A dry run with no usage checks what only rating knows, e.g. money with more decimals than the currency.
    idle = rateUsage({ currency: body.currency, charges: usageCharges(charges), usage: [], creditBucket: body.credit_bucket, ...idleCommitmentTerms(body, charges) });
  } catch (error) {
    if (error instanceof RatingError) throw new ApiProblem('invalid_price', error.message);
    throw error;
  }
  // Each amount fits NUMERIC(30, 12) on its own, but a period with no usage still bills the recurring fees plus the
  // charge minimums and the commitment true-up on one invoice: a plan whose idle invoice overflows the total
  // column could never bill (its subscription would stop on its first invoice as numeric_field_overflow).
  const fees = sumMoney([body.flat_fee, ...recurringCharges(charges).map((charge) => (charge.price as { amount: string }).amount)].map((fee) => roundMoney(toDecimal(fee), body.currency)));
  const idleTotal = fees.plus(toDecimal(idle.subtotal));
  if (idleTotal.gte(INVOICE_AMOUNT_LIMIT)) {
    throw new ApiProblem('invalid_price', `a period with no usage would bill ${idleTotal.toFixed()} ${body.currency}; an invoice holds less than 10^18`, [
      { path: 'flat_fee', message: 'the recurring fees, charge minimums and minimum commitment of one period must add up to less than 10^18' },
    ]);
  }
  return checked;
}

/** What invoice amounts (NUMERIC(30, 12)) can hold: 18 digits before the point. */
const INVOICE_AMOUNT_LIMIT = new Dec('1e18');

/** The commitment inputs of rating as the plan being published would give them (domain/plan-terms.ts commitmentTerms). */
function idleCommitmentTerms(body: PlanBody, charges: readonly DimensionalCharge[]): { minimumCommitment?: string; feesTowardCommitment?: string } {
  return commitmentTerms({
    currency: body.currency,
    flat_fee: body.flat_fee,
    charges,
    settings: { ...(body.minimum_commitment === undefined ? {} : { minimumCommitment: body.minimum_commitment }), ...(body.commitment_includes_fees ? { commitmentIncludesFees: true } : {}) },
  });
}

/**
 * A plan with usage charges waits out its usage grace window (the default one when none is given) at every period
 * boundary before it invoices, and refuses pauses and plan changes meanwhile: a window not shorter than a period
 * billed each fee in advance after its period had ended and never let a pause through (domain/plan-terms.ts).
 */
function checkGraceWindow(body: PlanBody): void {
  if (!body.charges.some((charge) => charge.price?.model !== 'flat')) return; // nothing metered: nothing waits
  const grace = body.usage_grace_period ?? DEFAULT_USAGE_GRACE_PERIOD;
  if (graceWindowFitsInterval(body.billing_interval, grace)) return;
  throw new ApiProblem('validation_failed', `the usage grace window ${grace} must be shorter than the billing interval ${body.billing_interval}`, [
    { path: 'usage_grace_period', message: `must be shorter than the billing interval ${body.billing_interval} (every period's invoice waits for it)${body.usage_grace_period === undefined ? `; the default is ${DEFAULT_USAGE_GRACE_PERIOD}` : ''}` },
  ]);
}

/** A plan's features as stored (domain/entitlements.ts), once each code is unique and each metered metric can carry its limit. */
async function checkedFeatures(db: Database, features: NonNullable<PlanBody['features']>): Promise<FeatureDefinition[]> {
  const codes = features.map((feature) => feature.code);
  const repeated = codes.filter((code, index) => codes.indexOf(code) !== index);
  if (repeated.length) throw new ApiProblem('validation_failed', `feature code(s) declared twice: ${[...new Set(repeated)].join(', ')}`);
  const metered = features.flatMap((feature) => (feature.kind === 'metered' ? [feature] : []));
  const metrics = new Map((await findMetricsByCode(db, metered.map((feature) => feature.metric_code))).map((metric) => [metric.code, metric]));
  const errors = metered.flatMap((feature) => {
    const metric = metrics.get(feature.metric_code);
    const path = `features.${features.indexOf(feature)}.metric_code`;
    if (!metric) return [{ path, message: `unknown billable metric ${feature.metric_code}` }];
    // A hard limit is checked event by event at ingestion: only a count or sum grows by each event's own amount.
    if (feature.limit !== null && feature.enforcement === 'hard' && !LIMITABLE_AGGREGATIONS.has(metric.aggregation)) {
      return [{ path, message: `a hard limit needs a count or sum metric; ${metric.code} is ${metric.aggregation} (use enforcement "soft")` }];
    }
    return [];
  });
  if (errors.length) throw new ApiProblem('validation_failed', `${errors.length} problem(s) in the plan's features`, errors);
  return features.map((feature) =>
    feature.kind === 'metered'
      ? { code: feature.code, kind: 'metered', metricCode: feature.metric_code, limit: feature.limit, enforcement: feature.enforcement }
      : { code: feature.code, kind: feature.kind },
  );
}

export function plansRouter(db: Database): Router {
  const routes = declareRoutes();

  /** Plans are immutable: posting an existing code publishes its next version; subscriptions keep theirs. */
  routes.post('/', ADMIN_ONLY, async (req, res) => {
    const body = createPlanBody.parse(req.body);
    checkGraceWindow(body);
    const charges = await checkCharges(db, body, chargesOf(body));
    const settings: PlanSettings & { disputeWindow?: string } = {
      ...(body.credit_bucket ? { creditBucket: body.credit_bucket } : {}),
      ...(body.minimum_commitment ? { minimumCommitment: body.minimum_commitment } : {}),
      ...(body.commitment_includes_fees ? { commitmentIncludesFees: true } : {}),
      ...(body.usage_grace_period ? { usageGracePeriod: body.usage_grace_period } : {}),
      ...(body.features ? { features: await checkedFeatures(db, body.features) } : {}),
      ...(body.dispute_window ? { disputeWindow: body.dispute_window } : {}),
      ...(body.usage_thresholds ? { usageThresholds: checkedUsageThresholds(body.usage_thresholds, body.currency, charges) } : {}),
    };
    try {
      const row = await publishPlanVersion(db, {
        code: body.code,
        name: body.name,
        currency: body.currency,
        billingInterval: body.billing_interval,
        trialPeriod: body.trial_period ?? null,
        flatFee: body.flat_fee,
        charges,
        settings: settings as Record<string, unknown>,
      });
      res.status(201).json(planJson(row));
    } catch (error) {
      if ((error as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new ApiProblem('plan_version_conflict', `plan ${body.code} was published concurrently; retry`);
      }
      throw error;
    }
  });

  routes.get('/', { allow: ['app', 'finance'] }, async (_req, res) => {
    const rows = await listPlanVersions(db);
    res.json({ data: rows.map(planJson) });
  });

  routes.get('/:code', { allow: ['app', 'finance'] }, async (req, res) => {
    const row = await findPlanVersion(db, req.params.code);
    if (!row) throw new ApiProblem('plan_not_found', `no plan ${req.params.code}`);
    res.json(planJson(row));
  });

  return routes.router;
}
