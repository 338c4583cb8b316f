import { z } from 'zod';
import { isDecimalString, isSupportedCurrency, toDecimal } from '../domain/money';
import { isValidInterval } from '../domain/periods';

/** Money and quantities arrive as decimal strings ("12.50"), never JSON numbers, so no float ever touches them. */
export const decimalString = z
  .string()
  .refine(isDecimalString, { message: 'must be a decimal string such as "12.50" (no exponent, no comma)' });

export const nonNegativeDecimal = decimalString.refine((value) => !toDecimal(value).isNegative(), {
  message: 'must not be negative',
});

export const currencyCode = z.string().refine(isSupportedCurrency, { message: 'unsupported ISO 4217 currency' });

export const isoDuration = z.string().refine(isValidInterval, { message: 'must be an ISO-8601 duration such as P1M, P14D or PT1M' });

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
});

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
  })
  .refine((metric) => metric.aggregation === 'count' || metric.property !== undefined, {
    message: 'property is required for every aggregation but count',
    path: ['property'],
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
