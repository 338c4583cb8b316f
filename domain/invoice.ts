/**
 * Invoice assembly: which lines an invoice gets and what they add up to. Pure.
 * Each line is rounded once (half-up, currency minor unit); the total is the sum of rounded lines.
 */
import Decimal from 'decimal.js';
import { formatMoney, roundMoney, sumMoney, toDecimal } from './money';

export type InvoiceLineKind = 'flat_fee' | 'usage' | 'credit' | 'commitment_true_up' | 'proration';

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
