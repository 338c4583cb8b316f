import { z } from 'zod';
import { isDecimalString, isSupportedCurrency, toDecimal } from '../domain/money';
import { isValidInterval, parseInterval } from '../domain/periods';

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

const code = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lowercase letters, digits, "_", "-" or "."; at most 63');

export const createCustomerBody = z.strictObject({
  external_id: z.string().min(1).max(200),
  name: z.string().min(1).max(200),
  email: z.email().max(320).optional(),
  currency: currencyCode,
  payment_method: z.string().min(1).max(200).optional(),
});

export const createPlanBody = z.strictObject({
  code,
  name: z.string().min(1).max(200),
  currency: currencyCode,
  billing_interval: isoDuration,
  trial_period: isoDuration.optional(),
  flat_fee: nonNegativeDecimal,
  charges: z.lazy(() => z.array(planCharge).max(100)).default([]),
  /** Usage included per period, in money (the hybrid model). */
  credit_bucket: z.lazy(() => nonNegativeDecimal).optional(),
  minimum_commitment: z.lazy(() => nonNegativeDecimal).optional(),
  usage_grace_period: isoDuration.optional(),
  /** What the plan entitles to (docs/wallets.md): boolean, metered with a per-period limit, or wallet-backed. */
  features: z.lazy(() => z.array(planFeature).max(100)).optional(),
});

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
  /** A future start schedules the subscription; omitted means now. */
  start_at: z.iso.datetime({ offset: true }).optional(),
});

export const cancelSubscriptionBody = z.strictObject({
  at: z.enum(['now', 'period_end']),
  reason: z.string().min(1).max(500),
});

export const uuidParam = z.uuid();

export const listInvoicesQuery = z.strictObject({
  customer_id: z.uuid().optional(),
  subscription_id: z.uuid().optional(),
  status: z.enum(['draft', 'open', 'paid', 'uncollectible', 'void']).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});

const propertyName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/, 'a property name: letters, digits, "_", "-" or "."');

export const createMetricBody = z
  .strictObject({
    code,
    name: z.string().min(1).max(200),
    event_type: z.string().min(1).max(200),
    aggregation: z.enum(['count', 'sum', 'max', 'unique_count', 'latest']),
    property: propertyName.optional(),
    filters: z.record(propertyName, z.union([z.string().max(200), z.boolean()])).default({}),
    unit_cost: nonNegativeDecimal.optional(),
    /** A corrections metric: negative values are accepted (sum only). Every other metric refuses them. */
    allow_negative: z.boolean().default(false),
  })
  .refine((metric) => metric.aggregation === 'count' || metric.property !== undefined, {
    message: 'property is required for every aggregation but count',
    path: ['property'],
  })
  .refine((metric) => !metric.allow_negative || metric.aggregation === 'sum', {
    message: 'allow_negative applies to sum metrics only',
    path: ['allow_negative'],
  });

const tier = z.strictObject({
  upTo: decimalString.nullable(),
  unitPrice: nonNegativeDecimal,
  flatFee: nonNegativeDecimal.optional(),
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
  }),
]);

export const planCharge = z.strictObject({
  metric_code: code,
  display_name: z.string().min(1).max(200).optional(),
  price: priceModel,
  included_units: nonNegativeDecimal.optional(),
});

export const usageEventBody = z.strictObject({
  id: z.string().min(1).max(200),
  customer: z.string().min(1).max(200),
  type: z.string().min(1).max(200),
  timestamp: z.string().max(64),
  properties: z.record(z.string().max(64), z.unknown()).default({}),
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
  reason: z.string().trim().min(1).max(500),
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
  description: z.string().max(500).optional(),
  /** Your own signing secret (at least 24 characters); one is generated when omitted. */
  secret: z.string().min(24).max(200).optional(),
});

// --- API keys and customer usage tokens (issue 7) ---

const API_KEY_ROLES = ['admin', 'finance', 'app', 'monitoring'] as const;
const MAX_KEY_LIFETIME_MS = 10 * 366 * 24 * 3_600_000;

export const createApiKeyBody = z.strictObject({
  name: z.string().trim().min(1).max(200),
  role: z.enum(API_KEY_ROLES),
  /** Optional expiry, in the future and at most ten years away; omitted means the key lives until revoked. */
  expires_at: z.iso
    .datetime({ offset: true })
    .refine((value) => new Date(value).getTime() > Date.now(), { message: 'must be in the future' })
    .refine((value) => new Date(value).getTime() < Date.now() + MAX_KEY_LIFETIME_MS, { message: 'must be within ten years' })
    .optional(),
});

export const listApiKeysQuery = z.strictObject({
  role: z.enum([...API_KEY_ROLES, 'customer_usage']).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export const revokeApiKeyBody = z.strictObject({
  reason: z.string().trim().min(1).max(500).optional(),
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
  /** Resume automatically then; paused until a resume request when absent. */
  until: z.iso.datetime({ offset: true }).optional(),
});

// --- Reports (issue 6) ---

/** A window [from, to) of instants with a zone; `to` after `from`. */
export const marginReportQuery = z
  .strictObject({
    from: z.iso.datetime({ offset: true }),
    to: z.iso.datetime({ offset: true }),
    currency: currencyCode.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .refine((query) => new Date(query.from).getTime() < new Date(query.to).getTime(), { message: 'to must be after from', path: ['to'] });

export const rerateBody = z.strictObject({
  reason: z.string().trim().min(1).max(1000),
  /** A corrected price: another version (or plan) to recompute the period with. */
  plan_code: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/).optional(),
  plan_version: z.int().positive().optional(),
  include_late_usage: z.boolean().default(false),
});

export const rerateDecisionBody = z.strictObject({
  reason: z.string().trim().min(1).max(1000),
});

const percent = decimalString.refine((value) => toDecimal(value).gt(0) && toDecimal(value).lte(1000), { message: 'a percentage above 0 and at most 1000' });

export const budgetBody = z.strictObject({
  /** null removes the budget. */
  amount: nonNegativeDecimal.nullable(),
  thresholds: z.array(percent).min(1).max(10).default(['50', '80', '100']),
});

/** Routes that take no body still refuse one with fields: a typo'd field is an error, not silently ignored. */
export const emptyBody = z.strictObject({});
