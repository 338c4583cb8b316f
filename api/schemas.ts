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
