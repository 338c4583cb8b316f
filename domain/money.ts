import Decimal from 'decimal.js';

/**
 * Money is a Decimal in code, NUMERIC in Postgres and a decimal string in JSON. Never a JS number.
 * This module owns the one rounding rule: half-up to the currency's ISO 4217 minor unit, once per line.
 */

// A private Decimal constructor so no other module's Decimal.set() can change our precision or rounding.
export const Dec = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_UP, toExpNeg: -30, toExpPos: 40 });
export type Dec = Decimal;

/**
 * For rating's products, which must be exact until their line is rounded once: prices and values have 12 decimals
 * each, so a product has 24 (36 for cost_plus), more than Dec's 40 significant digits from 10^16 (10^4) on. Rounded
 * there first, a product just below half a minor unit became exactly half and billed one more. Every amount the
 * bounds allow (20 integer digits of quantity, 18 of a price or cost, 12 decimals each) has fewer than 120 digits.
 */
export const Exact = Dec.clone({ precision: 120 });

/** ISO 4217 minor-unit exponents for the currencies we accept. Unknown currencies are rejected, not guessed. */
const MINOR_UNIT_EXPONENT: Readonly<Record<string, number>> = {
  USD: 2, EUR: 2, GBP: 2, CHF: 2, CAD: 2, AUD: 2, NZD: 2, SEK: 2, NOK: 2, DKK: 2, PLN: 2, CZK: 2,
  INR: 2, BRL: 2, MXN: 2, ZAR: 2, SGD: 2, HKD: 2, CNY: 2, ILS: 2, TRY: 2,
  JPY: 0, KRW: 0, CLP: 0, ISK: 0, VND: 0,
  KWD: 3, BHD: 3, OMR: 3, JOD: 3, TND: 3,
};

export function isSupportedCurrency(code: string): boolean {
  return Object.prototype.hasOwnProperty.call(MINOR_UNIT_EXPONENT, code);
}

export function minorUnitExponent(currency: string): number {
  const exponent = MINOR_UNIT_EXPONENT[currency];
  if (exponent === undefined) throw new RangeError(`unsupported currency: ${currency}`);
  return exponent;
}

/** Canonical decimal string: digits, optional sign, optional fraction. No exponents, no commas, no spaces. */
const DECIMAL_STRING = /^-?\d{1,20}(\.\d{1,12})?$/;

export function isDecimalString(value: string): boolean {
  return DECIMAL_STRING.test(value);
}

/** Parses a decimal string strictly; numbers are refused on purpose so floats never become money. */
export function toDecimal(value: string | Decimal): Decimal {
  if (Decimal.isDecimal(value)) return new Dec(value);
  if (typeof value !== 'string' || !isDecimalString(value)) {
    throw new TypeError(`not a decimal string: ${JSON.stringify(value)}`);
  }
  return new Dec(value);
}

/**
 * One spelling per number ("50", "50.0" and "050" are all "50"; "-0" is "0"), for a decimal that is a key or is
 * compared as text (spending thresholds in a unique row, an outbox dedupe key): two spellings were two keys.
 */
export function canonicalDecimal(value: string | Decimal): string {
  return toDecimal(value).toFixed();
}

/** Rounds half-up (away from zero on .5) to the currency's minor unit. */
export function roundMoney(amount: Decimal, currency: string): Decimal {
  return new Dec(amount).toDecimalPlaces(minorUnitExponent(currency), Decimal.ROUND_HALF_UP);
}

/** Formats a (rounded) amount as the JSON/NUMERIC string with exactly the currency's minor digits: "12.50". */
export function formatMoney(amount: Decimal, currency: string): string {
  return roundMoney(amount, currency).toFixed(minorUnitExponent(currency));
}

export function sumMoney(amounts: readonly Decimal[]): Decimal {
  return amounts.reduce<Decimal>((total, amount) => total.plus(amount), new Dec(0));
}

export const ZERO = new Dec(0);
