/**
 * Invoice assembly: which lines an invoice gets and what they add up to. Pure.
 * Each line is rounded once (half-up, currency minor unit); the total is the sum of rounded lines.
 */
import Decimal from 'decimal.js';
import { formatMoney, roundMoney, sumMoney, toDecimal } from './money';
import { recurringCharges, usageCharges } from './plan-terms';
import { DimensionalUsage, rateDimensionalUsage } from './dimensions';
import { Charge, flatFeeLine, RatedLine } from './rating';
import type { PeriodShare } from './allowances';

export type InvoiceLineKind = 'flat_fee' | 'usage' | 'credit' | 'commitment_true_up' | 'proration' | 'discount'
  // What a threshold invoice already billed of the usage (domain/progressive-billing.ts).
  | 'threshold_credit'
  // Credits a wallet top-up sells (store/wallet-topups.ts).
  | 'prepaid_credits';

export interface DraftInvoiceLine {
  readonly kind: InvoiceLineKind;
  readonly description: string;
  readonly metricCode: string | null;
  readonly quantity: string;
  /** Rounded to the currency's minor unit, as a decimal string. */
  readonly amount: string;
  readonly periodStart: string;
  readonly periodEnd: string;
  readonly breakdown: Readonly<Record<string, unknown>>;
}

export interface FlatFeeInput {
  readonly planName: string;
  readonly flatFee: string;
  readonly currency: string;
  readonly periodStart: string;
  readonly periodEnd: string;
}

/** The flat subscription fee, billed in advance for the period. No line when the plan has no fee. */
export function flatFeeLines(input: FlatFeeInput): DraftInvoiceLine[] {
  const fee = toDecimal(input.flatFee);
  if (fee.isZero()) return [];
  return [
    {
      kind: 'flat_fee',
      description: `${input.planName} subscription fee`,
      metricCode: null,
      quantity: '1',
      amount: formatMoney(fee, input.currency),
      periodStart: input.periodStart,
      periodEnd: input.periodEnd,
      breakdown: { unitPrice: fee.toString(), billedInAdvance: true },
    },
  ];
}

/** The invoice total: the sum of the already-rounded line amounts, so it always equals what the lines show. */
export function invoiceTotal(lines: readonly DraftInvoiceLine[], currency: string): string {
  const total: Decimal = sumMoney(lines.map((line) => roundMoney(toDecimal(line.amount), currency)));
  return formatMoney(total, currency);
}

export interface PeriodBounds {
  readonly start: string;
  readonly end: string;
}

/** Rated lines (rating engine) as invoice lines of the period they price. */
export function ratedLinesForPeriod(lines: readonly RatedLine[], period: PeriodBounds): DraftInvoiceLine[] {
  return lines.map((line) => ({
    kind: line.kind,
    description: line.description,
    metricCode: line.kind === 'usage' ? line.metricCode : null,
    quantity: line.quantity,
    amount: line.amount,
    periodStart: period.start,
    periodEnd: period.end,
    breakdown: line.breakdown as unknown as Record<string, unknown>,
  }));
}

export interface RenewalInvoiceInput {
  readonly planName: string;
  readonly currency: string;
  readonly flatFee: string;
  readonly charges: readonly Charge[];
  /** The period whose flat fees are billed in advance; null on a closing invoice. */
  readonly flatFeePeriod: PeriodBounds | null;
  /** The closed period whose usage is billed in arrears, with its aggregated usage; null on the first invoice. */
  readonly usage: { readonly period: PeriodBounds; readonly totals: readonly DimensionalUsage[] } | null;
  readonly creditBucket?: string;
  readonly minimumCommitment?: string;
  /** Recurring fees counted toward the commitment (plan-terms.ts commitmentTerms); absent: usage only. */
  readonly feesTowardCommitment?: string;
  /** The stretch's share of its period when a plan change cut it (rating.ts RatingInput.periodShare); absent: whole. */
  readonly periodShare?: PeriodShare;
}

/**
 * The lines of a renewal invoice: the next period's flat fees (in advance), then the closed period's usage
 * (in arrears) with the credit bucket and commitment true-up applied. A pure function of its inputs, so
 * building it twice gives the same invoice.
 */
export function renewalInvoiceLines(input: RenewalInvoiceInput): DraftInvoiceLine[] {
  const lines: DraftInvoiceLine[] = [];
  if (input.flatFeePeriod) {
    lines.push(
      ...flatFeeLines({
        planName: input.planName,
        flatFee: input.flatFee,
        currency: input.currency,
        periodStart: input.flatFeePeriod.start,
        periodEnd: input.flatFeePeriod.end,
      }),
      ...ratedLinesForPeriod(
        recurringCharges(input.charges).map((charge) => flatFeeLine({ currency: input.currency, charge })),
        input.flatFeePeriod,
      ),
    );
  }
  if (input.usage) {
    // Dimensional charges bill one line per combination; plans without them rate exactly as rateUsage does.
    const rated = rateDimensionalUsage({
      currency: input.currency,
      charges: usageCharges(input.charges),
      usage: input.usage.totals,
      creditBucket: input.creditBucket,
      minimumCommitment: input.minimumCommitment,
      ...(input.feesTowardCommitment === undefined ? {} : { feesTowardCommitment: input.feesTowardCommitment }),
      ...(input.periodShare === undefined ? {} : { periodShare: input.periodShare }),
    });
    lines.push(...ratedLinesForPeriod(rated.lines, input.usage.period));
  }
  return lines;
}

/** A plan's recurring fee: its flat fee plus any flat charges, as one decimal string (what proration credits). */
export function recurringFee(flatFee: string, charges: readonly Charge[]): string {
  const flatCharges = recurringCharges(charges).map((charge) => toDecimal((charge.price as { amount: string }).amount));
  return sumMoney([toDecimal(flatFee), ...flatCharges]).toString();
}
