/**
 * The rating.lines baseline: the same line math as domain/rating.ts, in BigInt fixed point (every decimal
 * string scaled by 10^12, the most fraction digits a decimal string may carry), each line rounded once,
 * half-up, to the currency's minor unit. Exact like the real engine, but it returns only line amounts: no
 * validation, no breakdown, no credit bucket or commitment. So ours / baseline is the price of decimal.js
 * plus the validation and the customer-readable breakdown.
 *
 * Benchmark code only: it is checked line by line against `rateUsage` before it is timed.
 */
import { minorUnitExponent } from '../domain/money';
import type { RatingInput } from '../domain/rating';
import type { Tier } from '../domain/price-models';

const FRACTION_DIGITS = 12;
const ONE = 10n ** BigInt(FRACTION_DIGITS);

/** "12.5" -> 12_500_000_000_000n (scaled by 10^12). Inputs are valid decimal strings (the fixtures are). */
function scaled(text: string): bigint {
  const negative = text.startsWith('-');
  const [whole, fraction = ''] = (negative ? text.slice(1) : text).split('.');
  const value = BigInt(whole) * ONE + BigInt(fraction.padEnd(FRACTION_DIGITS, '0'));
  return negative ? -value : value;
}

/** An amount scaled by 10^24 (a product of two scaled values) rounded half-up to minor units, as text. */
function formatMinor(amount24: bigint, exponent: number): string {
  const divisor = 10n ** BigInt(2 * FRACTION_DIGITS - exponent);
  const minor = (amount24 + divisor / 2n) / divisor; // amounts are non-negative: half-up = add half, truncate
  if (exponent === 0) return minor.toString();
  const digits = minor.toString().padStart(exponent + 1, '0');
  return `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}

function tierBounds(tiers: readonly Tier[]): { from: bigint; to: bigint | null; unitPrice: bigint; flatFee: bigint }[] {
  let from = 0n;
  return tiers.map((tier) => {
    const to = tier.upTo === null ? null : scaled(tier.upTo);
    const bounds = { from, to, unitPrice: scaled(tier.unitPrice), flatFee: scaled(tier.flatFee ?? '0') };
    from = to ?? from;
    return bounds;
  });
}

/** Line amounts (rounded, as text) for the usage charges of `input`, in charge order. */
export function rateUsageInBigInt(input: RatingInput): string[] {
  const exponent = minorUnitExponent(input.currency);
  const usageByMetric = new Map(input.usage.map((usage) => [usage.metricCode, usage]));
  const amounts: string[] = [];
  for (const charge of input.charges) {
    const price = charge.price;
    if (price.model === 'flat') continue;
    const usage = usageByMetric.get(charge.metricCode);
    const quantity = usage ? scaled(usage.quantity) : 0n;
    let amount24 = 0n;
    if (price.model === 'percentage') {
      const rate = scaled(price.rate);
      const minFee = price.minFee === undefined ? undefined : scaled(price.minFee) * ONE;
      const maxFee = price.maxFee === undefined ? undefined : scaled(price.maxFee) * ONE;
      const values = usage?.eventValues ?? [];
      for (const value of values) {
        const fee = scaled(value) * rate;
        amount24 += minFee !== undefined && fee < minFee ? minFee : maxFee !== undefined && fee > maxFee ? maxFee : fee;
      }
      amount24 += scaled(price.fixedFeePerEvent ?? '0') * ONE * BigInt(values.length);
    } else {
      const included = scaled(charge.includedUnits ?? '0');
      const billable = quantity > included ? quantity - included : 0n;
      switch (price.model) {
        case 'per_unit':
          amount24 = billable * scaled(price.unitPrice);
          break;
        case 'graduated':
          for (const tier of tierBounds(price.tiers)) {
            if (billable <= tier.from) break;
            const top = tier.to === null || billable < tier.to ? billable : tier.to;
            amount24 += (top - tier.from) * tier.unitPrice + tier.flatFee * ONE;
          }
          break;
        case 'volume': {
          const tier = tierBounds(price.tiers).find((candidate) => candidate.to === null || billable <= candidate.to);
          if (tier && billable > 0n) amount24 = billable * tier.unitPrice + tier.flatFee * ONE;
          break;
        }
        case 'package': {
          const size = scaled(price.packageSize);
          const packages = (billable + size - 1n) / size; // ceil, both positive
          amount24 = packages * scaled(price.packagePrice) * ONE;
          break;
        }
      }
    }
    amounts.push(formatMinor(amount24, exponent));
  }
  return amounts;
}
