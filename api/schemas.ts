import { z } from 'zod';
import { canonicalDecimal, isDecimalString, isSupportedCurrency, toDecimal } from '../domain/money';
import { isValidInterval, parseInterval } from '../domain/periods';
import { RERATE_REFUND_OUTCOMES, RERATE_STATUSES } from '../domain/rerating';

/** Money and quantities arrive as decimal strings ("12.50"), never JSON numbers, so no float ever touches them. */
export const decimalString = z
  .string()
  // abort: later refinements (toDecimal) must never see a string that is not a decimal.
  .refine(isDecimalString, { message: 'must be a decimal string such as "12.50" (no exponent, no comma)', abort: true })
  // NUMERIC(30, 12) columns hold 18 digits before the point; more would fail in Postgres, not here.
  .refine((value) => value.replace(/^-/, '').split('.')[0].length <= 18, { message: 'at most 18 digits before the decimal point', abort: true });

export const nonNegativeDecimal = decimalString.refine((value) => !toDecimal(value).isNegative(), {
  message: 'must not be negative',
});

/**
 * Names (customer, plan, metric, charge, API key): one line of text. They reach email subjects and greetings, the
 * invoice PDF, the workflow summary and log lines; a newline there forged a header in the customer's mail
 * ("Subject: Your Pro\nBcc: ..."). Control characters (C0, DEL, C1) and the Unicode line and paragraph separators
 * are refused (validation_failed on the field).
 */
const LINE_BREAKING = /[\p{Cc}\u2028\u2029]/u;
const oneLine = [(text: string) => !LINE_BREAKING.test(text), { message: 'must be one line: no control characters or line breaks' }] as const;
export const nameText = (max = 200) => z.string().min(1).max(max).refine(...oneLine);
/** Free text (reasons, descriptions): may span lines (tab, line feed, carriage return); no other control character. */
const CONTROL_BUT_LINES = /(?![\t\n\r])\p{Cc}/u;
const noControls = [(text: string) => !CONTROL_BUT_LINES.test(text), { message: 'must not contain control characters other than tab and line breaks' }] as const;
export const freeText = (max: number) => z.string().max(max).refine(...noControls);
/** Free text trimmed first (a reason of blanks is no reason), then bounded. */
const trimmedFreeText = (max: number) => z.string().trim().min(1).max(max).refine(...noControls);

export const currencyCode = z.string().refine(isSupportedCurrency, { message: 'unsupported ISO 4217 currency' });

/** Ten years: longer intervals are mistakes, and huge ones overflow calendar math in the workflow. */
const MAX_INTERVAL = { months: 120, days: 3_660, milliseconds: 3_660 * 86_400_000 };
export const isoDuration = z
  .string()
  .max(40)
  .refine(isValidInterval, { message: 'must be an ISO-8601 duration such as P1M, P14D or PT1M', abort: true })
  .refine(
    (value) => {
      const interval = parseInterval(value);
      return interval.months <= MAX_INTERVAL.months && interval.days <= MAX_INTERVAL.days && interval.milliseconds <= MAX_INTERVAL.milliseconds;
    },
    { message: 'must be at most ten years' },
  );

/** The instants Postgres and JavaScript agree on: years 0001-9999 in UTC (docs/api.md, "Instants"). */
const FIRST_INSTANT_MS = Date.parse('0001-01-01T00:00:00.000Z');
const LAST_INSTANT_MS = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * Every instant a request carries (bodies, query strings, import rows). RFC 3339 with an offset alone lets through
 * "0000-01-01T00:00:00Z" (year 0), "0001-01-01T00:00:00+01:00" (year 0 in UTC) and "9999-12-31T23:59:59-14:00"
 * (year 10000 in UTC): stored, such a value came back as "0000-...", "-000001-..." or "+010000-..." (toISOString),
 * which Postgres refuses when it is sent back and the OpenAPI document's date-time format refuses in an answer.
 */
export const instant = z.iso
  .datetime({ offset: true })
  .refine(
    (value) => {
      const at = Date.parse(value);
      // Not an RFC 3339 instant at all: the format check above has said so already.
      return Number.isNaN(at) || (at >= FIRST_INSTANT_MS && at <= LAST_INSTANT_MS);
    },
    // abort: a bound added to it (instantWithinTenYears) reports nothing more about an instant out of range.
    { message: 'must fall between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (in UTC, after its offset)', abort: true },
  );

/**
 * How far ahead a subscription's start, a pause's end and a grant's effective date may lie: ten years, as billing
 * intervals and API keys. Further ahead they mean nothing a bill could follow, only a workflow timer thousands of
 * years away (a subscription scheduled and never started, a pause never resumed, a credit no one can draw).
 * Expiries (grants, top-ups) may lie further: "2099" reads as "practically never" and costs a timer, not a bill.
 */
export const MAX_AHEAD_MS = 10 * 366 * 86_400_000;
export const instantWithinTenYears = instant.refine((value) => !(Date.parse(value) > Date.now() + MAX_AHEAD_MS), { message: 'must be at most ten years ahead' });

const code = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lowercase letters, digits, "_", "-" or "."; at most 63');

export const createCustomerBody = z.strictObject({
  external_id: z.string().min(1).max(200),
  name: nameText(),
  email: z.email().max(320).optional(),
  currency: currencyCode,
  payment_method: z.string().min(1).max(200).optional(),
});

export const createPlanBody = z.strictObject({
  code,
  name: nameText(),
  currency: currencyCode,
  billing_interval: isoDuration,
  trial_period: isoDuration.optional(),
  flat_fee: nonNegativeDecimal,
  charges: z.lazy(() => z.array(planCharge).max(100)).default([]),
  /** Usage included per period, in money (the hybrid model). */
  credit_bucket: z.lazy(() => nonNegativeDecimal).optional(),
  minimum_commitment: z.lazy(() => nonNegativeDecimal).optional(),
  /** Count the period's recurring fees (flat fee and flat charges) toward the minimum commitment. Default false. */
  commitment_includes_fees: z.boolean().optional(),
  usage_grace_period: isoDuration.optional(),
  /** What the plan entitles to (docs/wallets.md): boolean, metered with a per-period limit, or wallet-backed. */
  features: z.lazy(() => z.array(planFeature).max(100)).optional(),
  /** How long after an event a reversal of it is accepted (reversible outcomes, docs/pricing.md). */
  dispute_window: isoDuration.optional(),
  /** Progressive billing (docs/pricing.md): invoice the usage early when its amount reaches each threshold. */
  usage_thresholds: z.lazy(() => usageThresholds).optional(),
});

/** A list of increasing amounts, or one amount repeated (N, 2N, 3N, ...); checked against the currency on publish. */
export const usageThresholds = z
  .union([
    z.strictObject({ amounts: z.array(decimalString).min(1).max(20) }),
    z.strictObject({ every: decimalString }),
  ])
  .meta({ description: 'Usage thresholds (progressive billing): `{"amounts": ["100.00", "500.00"]}` or `{"every": "250.00"}`. Amounts of rated usage in the plan\'s currency, positive, increasing, at most 20.' });

const featureCode = z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/, 'letters, digits, "_", ".", ":" or "-"; at most 100');
export const planFeature = z.discriminatedUnion('kind', [
  z.strictObject({ code: featureCode, kind: z.literal('boolean') }),
  z.strictObject({
    code: featureCode,
    kind: z.literal('metered'),
    metric_code: z.string().min(1).max(100),
    limit: nonNegativeDecimal.nullable(),
    enforcement: z.enum(['hard', 'soft']).default('hard'),
  }),
  z.strictObject({ code: featureCode, kind: z.literal('wallet') }),
]);

export const createSubscriptionBody = z.strictObject({
  customer_id: z.uuid(),
  plan_code: code,
  /** Defaults to the newest version of the plan. */
  plan_version: z.int().positive().optional(),
  /** A future start (at most ten years ahead) schedules the subscription; omitted means now. */
  start_at: instantWithinTenYears.optional(),
});

export const cancelSubscriptionBody = z.strictObject({
  at: z.enum(['now', 'period_end']),
  reason: z.string().min(1).max(500).refine(...noControls),
});

export const uuidParam = z.uuid();

/**
 * A page size in a query string: decimal digits only, within 1..max. `z.coerce.number()` reads a string as
 * `Number()` does, so "0x10", "1e1", " 5" and "5 " were read as 16, 10, 5 and 5; anything but digits now stays a
 * string and is refused as one. The contract still shows an integer with its bounds.
 */
export function pageLimit(max: number, fallback: number) {
  const digits = (value: unknown): unknown => (typeof value === 'string' && /^[0-9]{1,9}$/.test(value) ? Number(value) : value);
  const notDigits = (issue: { code: string }) => (issue.code === 'invalid_type' ? 'a page size in decimal digits' : undefined);
  return z.preprocess(digits, z.int({ error: notDigits }).min(1).max(max).default(fallback));
}

/** An opaque invoice-list cursor (`next_cursor`); one that names no invoice of the list is refused (422). */
export const invoiceCursor = z.string().regex(/^[A-Za-z0-9_-]{1,200}$/, 'a next_cursor from a previous page');

export const listInvoicesQuery = z.strictObject({
  customer_id: z.uuid().optional(),
  subscription_id: z.uuid().optional(),
  status: z.enum(['draft', 'open', 'paid', 'uncollectible', 'void']).optional(),
  limit: pageLimit(200, 50),
  /** The `next_cursor` of the previous page: the list goes on after the invoice it names (keyset paging). */
  starting_after: invoiceCursor.optional(),
});

// Ingestion reads `properties[name]`: a name every object inherits ("constructor", "__proto__", "toString"...)
// answers even on an event that lacks it, so its checks misfire (a missing value accepted, or every event refused),
// while the close, in Postgres, reads nothing there.
const propertyName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'a property name: letters, digits, "_", "-" or "."')
  .refine((name) => !(name in Object.prototype), { message: 'must not be a name every JavaScript object has (constructor, __proto__, toString...)' });

export const createMetricBody = z
  .strictObject({
    code,
    name: nameText(),
    event_type: z.string().min(1).max(200),
    aggregation: z.enum(['count', 'sum', 'max', 'unique_count', 'latest', 'prorated_sum', 'prorated_latest']),
    property: propertyName.optional(),
    filters: z.record(propertyName, z.union([z.string().max(200), z.boolean()])).default({}),
    unit_cost: nonNegativeDecimal.optional(),
    /** A corrections metric: negative values are accepted (sum only). Every other metric refuses them. */
    allow_negative: z.boolean().default(false),
    /** Properties whose combinations a dimensional charge prices (docs/pricing.md). */
    group_by: z.array(propertyName).max(8).default([]),
  })
  .refine((metric) => metric.aggregation === 'count' || metric.property !== undefined, {
    message: 'property is required for every aggregation but count',
    path: ['property'],
  })
  .refine((metric) => !metric.allow_negative || metric.aggregation === 'sum' || metric.aggregation === 'prorated_sum', {
    message: 'allow_negative applies to sum metrics only (a prorated_sum metric takes negative deltas anyway)',
    path: ['allow_negative'],
  })
  .refine((metric) => new Set(metric.group_by).size === metric.group_by.length, { message: 'group_by must not repeat a property', path: ['group_by'] });

/**
 * A metric's cost table from an instant on (docs/pricing.md "Cost tables"); match rules as for dimensional prices.
 * `currency` is required, not defaulted: a table without one was read in each plan's own currency, which billed a
 * EUR plan USD figures as euros; a default would keep guessing.
 */
export const createCostTableBody = z.strictObject({
  currency: currencyCode.meta({ description: 'ISO 4217 code the unit costs are in. Only plans in this currency are costed with the table.' }),
  effective_from: z.iso.datetime({ offset: true }),
  costs: z
    .array(z.strictObject({ match: z.record(z.string().max(64), z.string().max(200)).default({}), unit_cost: nonNegativeDecimal }))
    .min(1)
    .max(5_000),
});

const tier = z.strictObject({
  upTo: decimalString.nullable(),
  unitPrice: nonNegativeDecimal,
  flatFee: nonNegativeDecimal.optional(),
  /** Bill the tier in blocks of this many units (rounded up per tier); unitPrice is then per block. */
  blockSize: decimalString.refine((value) => toDecimal(value).greaterThan(0), { message: 'must be greater than zero' }).optional(),
});

export const priceModel = z.discriminatedUnion('model', [
  z.strictObject({ model: z.literal('flat'), amount: nonNegativeDecimal }),
  z.strictObject({ model: z.literal('per_unit'), unitPrice: nonNegativeDecimal }),
  z.strictObject({ model: z.literal('graduated'), tiers: z.array(tier).min(1).max(50) }),
  z.strictObject({ model: z.literal('volume'), tiers: z.array(tier).min(1).max(50) }),
  z.strictObject({ model: z.literal('package'), packageSize: decimalString, packagePrice: nonNegativeDecimal }),
  z.strictObject({
    model: z.literal('percentage'),
    rate: decimalString,
    minFee: nonNegativeDecimal.optional(),
    maxFee: nonNegativeDecimal.optional(),
    fixedFeePerEvent: nonNegativeDecimal.optional(),
    /** The first N events bear no fee at all (a whole number, as a string). */
    freeEvents: z.string().regex(/^\d{1,9}$/, 'a whole number as a string, e.g. "3"').optional(),
    /** The first X of value bears no fee; the event that crosses X pays on its excess. */
    freeValue: nonNegativeDecimal.optional(),
  }),
  /** Unit cost from the metric's cost table in effect at each event's time × (1 + markup) (docs/pricing.md). */
  z.strictObject({ model: z.literal('cost_plus'), markup: nonNegativeDecimal }),
]);

/** Per-combination prices of a charge on a metric with group_by (docs/pricing.md). */
export const chargeDimensions = z.strictObject({
  prices: z
    .array(
      z.strictObject({
        match: z.record(z.string().max(64), z.string().max(200)),
        price: priceModel,
        included_units: nonNegativeDecimal.optional(),
      }),
    )
    .max(5_000),
  default_price: priceModel.optional(),
  /** Usage no price matches (and no default): refused at ingestion, or listed on the invoice unpriced. */
  unmatched: z.enum(['reject', 'list']).default('list'),
});

export const planCharge = z
  .strictObject({
    metric_code: code,
    display_name: nameText().optional(),
    /** Required unless `dimensions` prices the charge. */
    price: priceModel.optional(),
    included_units: nonNegativeDecimal.optional(),
    dimensions: chargeDimensions.optional(),
    /** Bounds on what the charge bills per period, applied after its price model (money, currency digits). */
    min_amount: nonNegativeDecimal.optional(),
    max_amount: nonNegativeDecimal.optional(),
    /** Graduated or volume: bill the first tier's flat fee even when the period's billable usage is 0. */
    first_tier_fee_at_zero_usage: z.boolean().optional(),
  })
  .refine((charge) => (charge.price === undefined) !== (charge.dimensions === undefined), {
    message: 'a charge has either a price or dimensions (whose default_price is its fallback)',
    path: ['price'],
  });

export const usageEventBody = z.strictObject({
  id: z.string().min(1).max(200),
  customer: z.string().min(1).max(200),
  type: z.string().min(1).max(200),
  timestamp: z.string().max(64),
  properties: z.record(z.string().max(64), z.unknown()).default({}),
  /** Takes back an earlier event of the same customer, within the plan's dispute window (docs/pricing.md). */
  reverses: z.string().min(1).max(200).optional(),
});

export const MAX_EVENTS_PER_BATCH = 1000;

/** One event, or `{ "events": [...] }` with up to 1,000; each event is validated on its own later. */
export const usageEventsEnvelope = z.union([
  z.strictObject({ events: z.array(z.unknown()).min(1).max(MAX_EVENTS_PER_BATCH) }),
  z.record(z.string(), z.unknown()).refine((body) => !('events' in body), { message: 'events must be an array of 1 to 1000 events' }),
]);

// --- Payments, refunds and webhooks (issue 5) ---

export const positiveDecimal = decimalString.refine((value) => toDecimal(value).greaterThan(0), { message: 'must be greater than zero' });

/** A refund of (part of) a paid invoice; the amount may have at most the currency's minor digits. */
export const refundInvoiceBody = z.strictObject({
  amount: positiveDecimal,
  reason: trimmedFreeText(500),
});

export const idempotencyKeyHeader = z.string().min(1).max(200);

export const updatePaymentMethodBody = z.strictObject({
  payment_method: z.string().trim().min(1).max(200),
});

/** `*`, an exact type such as `invoice.finalized`, or a prefix such as `payment.*`. */
const eventTypePattern = z.string().regex(/^(\*|[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?)$/, 'an event type, "prefix.*" or "*"');

export const createWebhookEndpointBody = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).max(2000),
  event_types: z.array(eventTypePattern).min(1).max(100),
  enabled: z.boolean().optional(),
  description: freeText(500).optional(),
  /** Your own signing secret (at least 24 characters); one is generated when omitted. */
  secret: z.string().min(24).max(200).optional(),
});

// --- API keys and customer usage tokens (issue 7) ---

const API_KEY_ROLES = ['admin', 'finance', 'app', 'monitoring'] as const;
const MAX_KEY_LIFETIME_MS = 10 * 366 * 24 * 3_600_000;

export const createApiKeyBody = z.strictObject({
  name: z.string().trim().min(1).max(200).refine(...oneLine),
  role: z.enum(API_KEY_ROLES),
  /** Optional expiry, in the future and at most ten years away; omitted means the key lives until revoked. */
  expires_at: instant
    .refine((value) => new Date(value).getTime() > Date.now(), { message: 'must be in the future' })
    .refine((value) => new Date(value).getTime() < Date.now() + MAX_KEY_LIFETIME_MS, { message: 'must be within ten years' })
    .optional(),
});

export const listApiKeysQuery = z.strictObject({
  role: z.enum([...API_KEY_ROLES, 'customer_usage']).optional(),
  limit: pageLimit(500, 100),
});

export const revokeApiKeyBody = z.strictObject({
  reason: trimmedFreeText(500).optional(),
});

export const createUsageTokenBody = z.strictObject({
  /** Seconds the token is valid: one minute to 30 days, one hour by default. */
  expires_in: z.int().min(60).max(30 * 86_400).default(3_600),
});

export const planChangeBody = z.strictObject({
  plan_code: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/),
  plan_version: z.int().positive().optional(),
  effective: z.enum(['immediate', 'period_end']),
});

export const pauseSubscriptionBody = z.strictObject({
  /** Resume automatically then (at most ten years ahead); paused until a resume request when absent. */
  until: instantWithinTenYears.optional(),
});

// --- Reports (issue 6) ---

/** A window [from, to) of instants with a zone; `to` after `from`. */
export const marginReportQuery = z
  .strictObject({
    from: instant,
    to: instant,
    currency: currencyCode.optional(),
    limit: pageLimit(1000, 100),
  })
  .refine((query) => new Date(query.from).getTime() < new Date(query.to).getTime(), { message: 'to must be after from', path: ['to'] });

export const rerateBody = z.strictObject({
  reason: trimmedFreeText(1000),
  /** A corrected price: another version (or plan) to recompute the period with. */
  plan_code: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/).optional(),
  plan_version: z.int().positive().optional(),
  include_late_usage: z.boolean().default(false),
});

export const rerateDecisionBody = z.strictObject({
  reason: trimmedFreeText(1000),
});

const percent = decimalString
  .refine((value) => toDecimal(value).gt(0) && toDecimal(value).lte(1000), { message: 'a percentage above 0 and at most 1000' })
  // Stored and keyed as text (one alert row per threshold): one spelling per number, so "50.0" is "50".
  .overwrite((value) => canonicalDecimal(value));

export const budgetBody = z.strictObject({
  /** null removes the budget. */
  amount: nonNegativeDecimal.nullable(),
  // A threshold given twice ("50" and "50.0") is one threshold.
  thresholds: z.array(percent).min(1).max(10).overwrite((thresholds) => [...new Set(thresholds)]).default(['50', '80', '100']),
});

/** Routes that take no body still refuse one with fields: a typo'd field is an error, not silently ignored. */
export const emptyBody = z.strictObject({});

// --- Responses (issue 13): what the routes answer, as the OpenAPI document (api/openapi.ts) publishes it ---
// These describe the serializers' output (api/serializers.ts and the routes' own *Json functions); nothing parses
// with them at run time. The integration tests check every response they receive against them.

/** Money in responses: a decimal string with the currency's minor digits ("12.50", "-3.000", "100"). */
export const moneyOut = z.string().regex(/^-?\d+(\.\d+)?$/).meta({ examples: ['12.50'] });
const instantOut = z.iso.datetime({ offset: true });
const nullableInstant = instantOut.nullable();
/** A free-form JSON object whose shape the route's description explains (rating breakdowns, workflow state). */
const jsonObject = z.record(z.string(), z.unknown());

export const SUBSCRIPTION_STATUSES = [
  'scheduled',
  'trialing',
  'active',
  'past_due',
  'suspended',
  'paused',
  'retention_offered',
  'pending_cancellation',
  'needs_attention',
  'canceled',
] as const;
const subscriptionStatus = z.enum(SUBSCRIPTION_STATUSES);
const invoiceStatus = z.enum(['draft', 'open', 'paid', 'uncollectible', 'void']);

/** RFC 9457 problem details, with the stable `code` clients branch on (api/problem.ts). */
export const problemResponse = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.int(),
  code: z.string(),
  detail: z.string(),
  errors: z
    .array(z.looseObject({ path: z.string().optional(), message: z.string().optional(), index: z.int().optional(), code: z.string().optional() }))
    .optional(),
});

export const customerResponse = z.object({
  id: z.uuid(),
  external_id: z.string(),
  name: z.string(),
  email: z.string().nullable(),
  currency: z.string(),
  payment_method: z.string().nullable(),
  created_at: nullableInstant,
});

export const planResponse = z.object({
  id: z.uuid(),
  code: z.string(),
  version: z.int(),
  name: z.string(),
  currency: z.string(),
  billing_interval: z.string(),
  trial_period: z.string().nullable(),
  flat_fee: moneyOut,
  charges: z.array(
    z.object({
      metric_code: z.string(),
      display_name: z.string().nullable(),
      price: jsonObject.meta({ description: 'The price model as published (see the plan request\'s `price`).' }),
      included_units: z.string().nullable(),
      min_amount: z.string().nullable(),
      max_amount: z.string().nullable(),
      first_tier_fee_at_zero_usage: z.boolean(),
      dimensions: z
        .object({
          group_by: z.array(z.string()),
          prices: z.array(z.object({ match: z.record(z.string(), z.string()), price: jsonObject, included_units: z.string().nullable() })),
          default_price: jsonObject.nullable(),
          unmatched: z.enum(['reject', 'list']),
        })
        .optional()
        .meta({ description: 'A dimensional charge\'s prices per combination (docs/pricing.md); absent on an ordinary charge.' }),
    }),
  ),
  credit_bucket: z.string().nullable(),
  minimum_commitment: z.string().nullable(),
  commitment_includes_fees: z.boolean(),
  usage_grace_period: z.string(),
  dispute_window: z.string().nullable().meta({ description: 'How long after an outcome a reversal of it is accepted (docs/pricing.md); null: reversals refused.' }),
  usage_thresholds: z
    .union([z.object({ amounts: z.array(z.string()) }), z.object({ every: z.string() })])
    .nullable()
    .meta({ description: 'Progressive billing thresholds (docs/pricing.md); null: usage is invoiced at period end only.' }),
  features: z.array(
    z.object({
      code: z.string(),
      kind: z.enum(['boolean', 'metered', 'wallet']),
      metric_code: z.string().optional(),
      limit: z.string().nullable().optional(),
      enforcement: z.enum(['hard', 'soft']).optional(),
    }),
  ),
  created_at: nullableInstant,
});

export const metricResponse = z.object({
  id: z.uuid(),
  code: z.string(),
  name: z.string(),
  event_type: z.string(),
  aggregation: z.enum(['count', 'sum', 'max', 'unique_count', 'latest', 'prorated_sum', 'prorated_latest']),
  property: z.string().nullable(),
  filters: jsonObject,
  unit_cost: z.string().nullable(),
  allow_negative: z.boolean(),
  group_by: z.array(z.string()).meta({ description: 'Event properties the usage is split by for dimensional prices (docs/pricing.md); empty when none.' }),
  created_at: instantOut,
});

/** Listing a metric's cost tables: all currencies, or one. */
export const costTableListQuery = z.strictObject({ currency: currencyCode.optional() });

export const costTableResponse = z.object({
  metric_code: z.string(),
  currency: z.string(),
  effective_from: instantOut,
  costs: z.array(z.object({ match: z.record(z.string(), z.string()), unit_cost: z.string() })),
  created_by: z.string(),
  created_at: instantOut,
});

export const subscriptionResponse = z.object({
  id: z.uuid(),
  customer_id: z.uuid(),
  plan: z.object({ id: z.uuid(), code: z.string(), version: z.int() }),
  status: subscriptionStatus,
  workflow_id: z.string(),
  start_at: nullableInstant,
  trial_end: nullableInstant,
  current_period_start: nullableInstant,
  current_period_end: nullableInstant,
  canceled_at: nullableInstant,
  cancel_reason: z.string().nullable(),
  created_at: nullableInstant,
});

export const subscriptionDetailResponse = subscriptionResponse.extend({
  live: jsonObject.nullable().meta({ description: "The workflow's live state (status, current period, dunning, last invoice, timeline); null when it cannot answer." }),
  live_unavailable: z.enum(['temporal_unavailable', 'live_query_failed']).optional(),
  live_error: z.string().optional(),
});

export const invoiceLineResponse = z.object({
  id: z.uuid(),
  position: z.int(),
  kind: z.string(),
  description: z.string(),
  metric_code: z.string().nullable(),
  quantity: z.string(),
  amount: moneyOut,
  period_start: nullableInstant,
  period_end: nullableInstant,
  breakdown: z.unknown(),
});

export const invoiceResponse = z.object({
  id: z.uuid(),
  number: z.string().nullable(),
  customer_id: z.uuid(),
  subscription_id: z.uuid().nullable(),
  kind: z.string(),
  status: invoiceStatus,
  currency: z.string(),
  period_start: nullableInstant,
  period_end: nullableInstant,
  total: moneyOut,
  finalized_at: nullableInstant,
  paid_at: nullableInstant,
  lines: z.array(invoiceLineResponse).optional().meta({ description: 'Present on GET /v1/invoices/{id}.' }),
  threshold: z
    .object({ index: z.int().positive(), amount: moneyOut })
    .nullable()
    .optional()
    .meta({ description: 'Threshold invoices (kind `threshold`, progressive billing): the usage threshold it is for, 1-based, and its amount.' }),
  credited_invoice_id: z.uuid().nullable().optional().meta({ description: 'Credit notes: the invoice they credit.' }),
});

export const invoiceListResponse = z.object({
  data: z.array(invoiceResponse),
  /** More invoices follow: ask again with `starting_after` = `next_cursor`. */
  has_more: z.boolean(),
  /** The cursor of the page's last invoice (null on an empty page). */
  next_cursor: z.string().nullable(),
});

export const creditNoteResponse = invoiceResponse.extend({
  credited_invoice_id: z.uuid().nullable(),
  reason: z.string().nullable(),
  refund: z
    .object({
      id: z.uuid(),
      status: z.enum(['pending', 'succeeded', 'failed']),
      amount: moneyOut,
      currency: z.string(),
      gateway_refund_id: z.string().nullable(),
      failure_code: z.string().nullable(),
      created_at: instantOut,
    })
    .nullable(),
});

export const refundListResponse = z.object({
  invoice_id: z.uuid(),
  currency: z.string(),
  amount_paid: moneyOut,
  amount_refunded: moneyOut,
  amount_refundable: moneyOut,
  data: z.array(creditNoteResponse),
});

export const ingestionResponse = z.object({
  accepted: z.int(),
  duplicates: z.int(),
  rejected: z.int(),
  errors: z.array(z.object({ index: z.int(), code: z.string(), detail: z.string() })),
});

export const apiKeyResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  role: z.enum(['admin', 'finance', 'app', 'monitoring', 'customer_usage']),
  prefix: z.string(),
  status: z.enum(['active', 'revoked', 'expired']),
  customer_id: z.uuid().nullable(),
  created_by: z.string().nullable(),
  expires_at: nullableInstant,
  revoked_at: nullableInstant,
  last_used_at: nullableInstant,
  created_at: nullableInstant,
});
export const createdApiKeyResponse = apiKeyResponse.extend({
  key: z.string().nullable().meta({ description: 'The secret: shown here once, never again. null in a replay of the request under the same Idempotency-Key (the secret is not stored).' }),
});

export const usageTokenResponse = z.object({
  id: z.uuid(),
  token: z.string().nullable().meta({ description: 'The token: shown here once. null in a replay of the request under the same Idempotency-Key (it is not stored).' }),
  customer_id: z.uuid(),
  expires_at: nullableInstant,
  scope: z.string(),
});

export const usageTokenOverviewResponse = z.object({
  customer: z.object({ id: z.uuid(), external_id: z.string(), name: z.string(), currency: z.string() }),
  token: z.object({ expires_at: nullableInstant }),
  subscriptions: z.array(
    z.object({
      id: z.uuid(),
      status: subscriptionStatus,
      plan: z.object({
        code: z.string(),
        version: z.int(),
        name: z.string(),
        currency: z.string(),
        billing_interval: z.string(),
        flat_fee: moneyOut,
        credit_bucket: z.string().nullable(),
      }),
      start_at: nullableInstant,
      current_period_start: nullableInstant,
      current_period_end: nullableInstant,
      canceled_at: nullableInstant,
    }),
  ),
});

const periodOut = z.object({ start: instantOut, end: instantOut });

export const currentUsageResponse = z.object({
  subscription_id: z.uuid(),
  currency: z.string().optional(),
  period: periodOut.nullable(),
  as_of: instantOut.optional(),
  usage: z.array(
    z.object({
      metric_code: z.string(),
      quantity: z.string(),
      event_count: z.int(),
      amount: moneyOut.optional().meta({ description: "What the metric's usage lines add to the projected invoice (absent when no charge prices it)." }),
      groups: z
        .array(z.object({ dimensions: z.record(z.string(), z.string()), quantity: z.string(), event_count: z.int(), amount: moneyOut.optional().meta({ description: "The combination's projected line." }) }))
        .optional(),
      opening_level: z.string().optional().meta({ description: 'Seat-like (prorated) metrics: the level carried into the period; quantity is the level prorated over the period.' }),
    }),
  ),
  projected: z
    .object({
      fee: moneyOut.meta({
        description: "The fee the invoice billing this usage bills in advance for the next period (the plan in force then, after a change scheduled for the period's end; 0 on a closing invoice). fee + subtotal is that invoice's total before prepaid credit.",
      }),
      lines: z.array(jsonObject),
      usage_total: moneyOut,
      credit_applied: moneyOut,
      credit_remaining: moneyOut.nullable(),
      subtotal: moneyOut.meta({
        description: "The usage part of that invoice: its usage lines and credits, and a retention discount line whole, as the invoice computes it over the fee and the usage together (so it can be below the usage, or negative).",
      }),
      unpriced: z.array(jsonObject).optional().meta({ description: 'Usage of dimensional charges no price matches (listed, not billed).' }),
    })
    .nullable(),
});

export const dailyUsageResponse = z.object({
  subscription_id: z.uuid(),
  period: periodOut.nullable(),
  as_of: instantOut.optional(),
  timezone: z.literal('UTC'),
  metrics: z.array(
    z.object({
      metric_code: z.string(),
      name: z.string(),
      aggregation: z.string(),
      days: z.array(z.object({ date: z.string(), quantity: z.string(), event_count: z.int() })),
    }),
  ),
});

export const budgetResponse = z.object({
  subscription_id: z.uuid(),
  budget: z.string().nullable(),
  currency: z.string(),
  thresholds: z.array(z.string()),
});

export const lateUsageResponse = z.object({
  data: z.array(z.object({ id: z.string(), type: z.string(), timestamp: instantOut, received_at: instantOut, properties: jsonObject })),
});

/** A customer's uncovered usage (docs/usage-events.md "Uncovered usage"): `starting_after` is a `next_cursor`. */
export const uncoveredUsageQuery = z.strictObject({
  limit: pageLimit(500, 100),
  starting_after: z.string().regex(/^[0-9]{1,18}$/, 'a next_cursor from a previous page').optional(), // within a bigint
});

const uncoveredReason = z.enum(['no_subscription', 'before_first_subscription', 'between_subscriptions', 'after_subscription_end', 'event_type_not_priced']).meta({
  description:
    'Why no subscription of the customer prices the event: the customer has none; it is stamped before the first one starts; between an end and the next start or a win-back restart; after every subscription ended; or its type is not metered by the plan in force at its time.',
});

export const uncoveredUsageResponse = z.object({
  data: z.array(z.object({ id: z.string(), type: z.string(), timestamp: instantOut, received_at: instantOut, properties: jsonObject, reason: uncoveredReason })),
  /** Per event type, over every uncovered event of the customer (not only this page). */
  totals: z.array(z.object({ type: z.string(), events: z.int().nonnegative(), earliest: instantOut, latest: instantOut })),
  has_more: z.boolean(),
  next_cursor: z.string().nullable(),
});

/** What a subscription's start leaves unbilled of the customer's stored usage (POST /v1/subscriptions, each imported row). */
export const uncoveredUsageSummary = z.object({ events: z.int().positive(), earliest: instantOut });

/** POST /v1/subscriptions: the subscription, and what its start leaves unbilled of the customer's stored usage. */
export const createdSubscriptionResponse = subscriptionResponse.extend({
  uncovered_usage: uncoveredUsageSummary
    .optional()
    .meta({ description: "Stored events of types the plan prices, stamped before the start, that no subscription bills: back-date start_at to bill them (GET /v1/customers/:id/uncovered-usage lists them). Absent when there are none." }),
});

export const planChangeResponse = z.object({
  effective: z.enum(['immediate', 'period_end']),
  effective_at: z.string(),
  plan_code: z.string(),
  invoice: z.object({ id: z.uuid(), number: z.string(), total: moneyOut, currency: z.string(), status: z.string() }).nullable(),
});

export const cancelSubscriptionResponse = z.object({ status: subscriptionStatus, effective_at: z.string().nullable() });
export const subscriptionStatusResponse = z.object({ status: subscriptionStatus });
export const pauseSubscriptionResponse = z.object({ status: subscriptionStatus, paused_until: z.string().nullable() });
export const withdrawScheduledChangeResponse = z.object({ withdrawn: z.boolean() });
export const retryFailedStepResponse = z.object({ status: subscriptionStatus, retrying_step: z.string() });

/** A re-rating's statuses (domain/rerating.ts); `failed` ends one whose workflow failed before carrying it out. */
const rerateStatus = z.enum(RERATE_STATUSES);

export const rerateResponse = z.object({
  id: z.uuid(),
  invoice_id: z.uuid(),
  subscription_id: z.uuid(),
  status: rerateStatus,
  reason: z.string(),
  requested_by: z.string(),
  corrected_plan_id: z.uuid().nullable(),
  include_late_usage: z.boolean(),
  proposal: z
    .object({
      usage_period: z.unknown(),
      outcome: z.string(),
      total: moneyOut,
      lines: z.array(jsonObject),
      late_events: z.int(),
      /** Of a credit on an invoice the wallet paid: what goes back to the wallet's grants (the rest is refunded). */
      wallet_credit_back: moneyOut.nullable(),
      /** Later invoices this proposal's late seat changes move, with what a re-rating of each proposes now (re-rate them too). */
      later_invoices_changed: z.array(z.object({ invoice_id: z.uuid(), usage_period: periodOut, total: moneyOut, outcome: z.enum(['adjustment', 'credit']) })),
    })
    .nullable(),
  decided_by: z.string().nullable(),
  decision_reason: z.string().nullable(),
  result_invoice_id: z.uuid().nullable(),
  /**
   * Each credit note the re-rating issued (its cash part), in issue order, and what became of its money (`outcome`):
   * `refunded` to the payment, `credited_to_wallet` (the gateway refused the refund), `pending`, `taken_off_invoice`
   * (a note on an unpaid invoice: its charge collects less), `owed` (nothing gave it back yet). The status stays
   * `finalized` whatever the refunds do. Empty before it is carried out, and for an adjustment.
   */
  refunds: z.array(
    z.object({
      credit_note_id: z.uuid(),
      credit_note_number: z.string().nullable(),
      /** The invoice the note credits: the re-rated one, or a threshold invoice or adjustment of its period. */
      invoice_id: z.uuid(),
      amount: moneyOut,
      currency: z.string(),
      outcome: z.enum(RERATE_REFUND_OUTCOMES),
      refund: z.object({ id: z.uuid(), status: z.enum(['pending', 'succeeded', 'failed']), amount: moneyOut, failure_code: z.string().nullable() }).nullable(),
    }),
  ),
  /** Why a `failed` re-rating was not carried out: the stable code (e.g. `invoice_not_paid`, `rerate_proposal_stale`) and message; null otherwise. */
  failure: z.object({ code: z.string(), message: z.string() }).nullable(),
  workflow_id: z.string(),
});

const marginFiguresOut = { currency: z.string(), revenue: moneyOut, cost: moneyOut, margin: moneyOut, margin_percent: z.string().nullable() };
/** One (metric, combination)'s figures, per subscription and in the loss-making totals. */
const combinationFiguresOut = { metric_code: z.string(), dimension_key: z.string(), quantity: z.string(), revenue: moneyOut, cost: moneyOut, margin: moneyOut };
export const marginReportResponse = z.object({
  from: instantOut,
  to: instantOut,
  data: z.array(
    z.object({
      subscription_id: z.uuid(),
      status: z.string(),
      customer: z.object({ id: z.uuid(), external_id: z.string(), name: z.string() }),
      plan: z.object({ code: z.string(), version: z.int() }),
      ...marginFiguresOut,
      /** margin < 0. */
      loss_making: z.boolean(),
      cost_breakdown: z.array(
        z.object({
          metric_code: z.string(),
          quantity: z.string(),
          unit_cost: z.string().nullable(),
          cost: moneyOut,
          /** The shares the metric's cost tables costed (docs/margins.md); unit_cost null: the fallback unit_cost. */
          cost_segments: z.array(z.object({ effective_from: instantOut.nullable(), quantity: z.string(), unit_cost: z.string().nullable() })).optional(),
        }),
      ),
      combinations: z.array(z.object({ ...combinationFiguresOut, loss_making: z.boolean() })).optional(),
    }),
  ),
  has_more: z.boolean(),
  totals: z.array(z.object({ ...marginFiguresOut, subscriptions: z.int() })),
  /** Customers and combinations whose margin over the window is negative, worst first (not cut by limit). */
  loss_making: z.object({
    customers: z.array(
      z.object({ customer: z.object({ id: z.uuid(), external_id: z.string() }), subscription_ids: z.array(z.uuid()), ...marginFiguresOut, loss_making: z.literal(true) }),
    ),
    combinations: z.array(z.object({ currency: z.string(), ...combinationFiguresOut, subscriptions: z.int(), loss_making: z.literal(true) })),
  }),
});

export const findingsResponse = z.object({
  data: z.array(
    z.object({
      id: z.uuid(),
      kind: z.string(),
      subject: z.object({ type: z.string(), id: z.string() }),
      detail: z.unknown(),
      repaired: z.boolean(),
      status: z.enum(['open', 'resolved']),
      first_seen: instantOut,
      last_seen: instantOut,
      resolved_at: nullableInstant,
    }),
  ),
  has_more: z.boolean(),
});

export const webhookEndpointResponse = z.object({
  id: z.uuid(),
  url: z.string(),
  event_types: z.array(z.string()),
  enabled: z.boolean(),
  description: z.string().nullable(),
  secret_hint: z.string(),
  created_at: nullableInstant,
});
export const createdWebhookEndpointResponse = webhookEndpointResponse.extend({ secret: z.string().meta({ description: 'The signing secret: shown here once.' }) });

export const webhookDeliveriesResponse = z.object({
  data: z.array(
    z.object({
      id: z.string().meta({ description: 'A sequence number (BIGINT), as a string.' }),
      event_id: z.string(),
      event_type: z.string(),
      status: z.enum(['pending', 'delivered', 'failed']),
      attempt: z.int(),
      last_status_code: z.int().nullable(),
      last_error: z.string().nullable(),
      next_attempt_at: nullableInstant,
      delivered_at: nullableInstant,
      created_at: nullableInstant,
    }),
  ),
});

export const livenessResponse = z.object({ status: z.literal('ok') });
export const readinessResponse = z.object({
  status: z.literal('ready'),
  checks: z.record(z.string(), z.looseObject({ ok: z.boolean() })),
  warnings: z.array(z.string()).optional(),
});

// --- Wallets and entitlements (issue 12, docs/wallets.md) ---

export const walletGrantResponse = z.object({
  id: z.uuid(),
  source: z.string(),
  amount: moneyOut.nullable(),
  remaining: moneyOut.nullable(),
  priority: z.int(),
  effective_at: nullableInstant,
  expires_at: nullableInstant,
  metric_codes: z.array(z.string()).nullable(),
});

const walletSettingsOut = {
  overdraft_limit: moneyOut.nullable(),
  low_balance_threshold: moneyOut.nullable(),
  recharge_threshold: moneyOut.nullable(),
  recharge_amount: moneyOut.nullable(),
};

export const walletResponse = z.object({
  customer_id: z.uuid(),
  currency: z.string(),
  has_wallet: z.boolean(),
  balance: moneyOut.nullable(),
  pending_usage: moneyOut,
  available: moneyOut,
  ...Object.fromEntries(Object.entries(walletSettingsOut).map(([key, schema]) => [key, schema.optional()])),
  projected_run_out_at: nullableInstant,
  grants: z.array(walletGrantResponse),
  ledger: z.array(
    z.object({
      id: z.string(),
      kind: z.string(),
      grant_id: z.uuid().nullable(),
      amount: moneyOut.nullable(),
      balance_after: moneyOut.nullable(),
      description: z.string().nullable(),
      created_at: nullableInstant,
    }),
  ),
});

export const walletSettingsResponse = z.object({
  customer_id: z.uuid(),
  currency: z.string(),
  ...walletSettingsOut,
  grant_expiry_notice: z.string().optional().meta({ description: 'How long before a grant expires `grant.expiring` is sent (ISO 8601 duration).' }),
});

/** A purchase of prepaid credits (POST /v1/customers/:id/wallet/top-ups, or an automatic recharge). */
export const walletTopUpResponse = z.object({
  id: z.uuid(),
  customer_id: z.uuid(),
  kind: z.enum(['top_up', 'recharge']),
  status: z.enum(['pending', 'paid', 'declined']),
  amount: moneyOut,
  currency: z.string(),
  priority: z.int(),
  expires_at: nullableInstant,
  decline_code: z.string().nullable(),
  invoice: z
    .object({ id: z.uuid(), number: z.string().nullable(), status: z.string(), total: moneyOut, currency: z.string() })
    .nullable()
    .meta({ description: 'The top-up invoice: paid, or uncollectible when the charge was declined; null while not yet issued.' }),
  grant: walletGrantResponse.nullable().meta({ description: 'The purchased grant, once the invoice is paid.' }),
  created_at: z.string(),
});

export const entitlementResponse = z.object({
  customer_id: z.uuid(),
  feature: z.string(),
  kind: z.enum(['boolean', 'metered', 'wallet']).nullable().meta({ description: 'null: no current plan of the customer declares the feature.' }),
  has_access: z.boolean(),
  usage: z.string().nullable(),
  limit: z.string().nullable(),
  balance: z.string().nullable(),
  resets_at: nullableInstant,
});

export const entitlementsResponse = z.object({
  customer_id: z.uuid(),
  data: z.array(entitlementResponse.omit({ customer_id: true })),
});
