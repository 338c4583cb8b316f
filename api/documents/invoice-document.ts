/**
 * What an invoice or credit note document says, independent of its format: the HTML and PDF renderers
 * (invoice-html.ts, invoice-pdf.ts) draw exactly this, so the two never disagree. Pure: rows in, text out.
 *
 * Amounts are the stored, already rounded line amounts with the currency's minor digits; breakdown figures are the
 * exact (unrounded) values the rating engine recorded, so a customer can redo every line by hand. The document's
 * total is the invoice's total, and it must equal the sum of the lines (DESIGN.md): a document that would show
 * otherwise is refused rather than issued.
 */
import { formatMoney, sumMoney, toDecimal } from '../../domain/money';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';

export interface InvoiceDocumentInput {
  readonly invoice: InvoiceRow & { readonly credited_invoice_id?: string | null; readonly reason?: string | null };
  readonly lines: readonly InvoiceLineRow[];
  readonly customer: { readonly name: string; readonly external_id: string; readonly email?: string | null };
  /** The number of the invoice a credit note credits (looked up by the caller). */
  readonly creditedInvoiceNumber?: string | null;
  /** Who issues the document; "meterloop" when omitted. */
  readonly issuer?: string;
  /**
   * The refund that pays a credit back (a credit note's, or a negative invoice's: `refunds.credit_note_id` names
   * either), null when there is none. A refused refund also leaves the document `paid` (its amount went to the
   * customer's wallet instead), so the status alone cannot say whether money went back to the card.
   */
  readonly refund?: {
    readonly status: 'pending' | 'succeeded' | 'failed';
    readonly amount: string;
    /**
     * Each refund of the credit (a credit total refunded across several payments has one per payment), when the
     * caller has them. With parts of different outcomes the document tells each outcome with its own amount: the
     * summed amount under the worst status told a customer that money back on their card went to their wallet.
     */
    readonly parts?: readonly { readonly status: 'pending' | 'succeeded' | 'failed'; readonly amount: string }[];
  } | null;
}

/** One explanation row under a line: a tier, the included units, how the credit was allocated, ... */
export interface BreakdownRow {
  readonly label: string;
  readonly value: string;
}

export interface DocumentLine {
  /** 1-based, in invoice order. */
  readonly number: number;
  readonly kind: string;
  readonly description: string;
  readonly period: string;
  readonly quantity: string;
  /** Rounded, with the currency's minor digits. */
  readonly amount: string;
  readonly breakdown: readonly BreakdownRow[];
}

export interface InvoiceDocument {
  readonly kind: 'invoice' | 'credit_note';
  readonly title: string;
  /** The invoice number, or "DRAFT" before it has one. */
  readonly number: string;
  readonly status: string;
  readonly currency: string;
  readonly issuer: string;
  readonly issuedAt: string | null;
  readonly period: string;
  readonly customer: { readonly name: string; readonly externalId: string; readonly email: string | null };
  /** Sentences shown under the heading (what a credit note credits and why, that a draft is not issued, ...). */
  readonly notes: readonly string[];
  readonly lines: readonly DocumentLine[];
  /** Equals the sum of the lines' amounts. */
  readonly total: string;
  /** A file name without extension, safe in a Content-Disposition header: "INV-000001". */
  readonly fileName: string;
}

export class InvoiceDocumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvoiceDocumentError';
  }
}

const KIND_TITLES: Readonly<Record<string, string>> = {
  period: 'Invoice',
  closing: 'Final invoice',
  proration: 'Invoice (plan change)',
  credit_note: 'Credit note',
};

/** "2026-11-01" for midnight UTC, else "2026-11-01 14:05:09 UTC": short periods (minutes) stay readable. */
export function formatInstant(value: Date): string {
  const text = value.toISOString();
  return text.endsWith('T00:00:00.000Z') ? text.slice(0, 10) : `${text.slice(0, 19).replace('T', ' ')} UTC`;
}

export function formatPeriod(start: Date, end: Date): string {
  return `${formatInstant(start)} – ${formatInstant(end)}`;
}

/** NUMERIC(30,12) text without its padding zeros: "3.000000000000" -> "3". */
function plainDecimal(value: string): string {
  try {
    return toDecimal(value).toFixed();
  } catch {
    return value;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Breakdowns: the JSON the rating engine and invoicing stored per line (domain/rating.ts, invoice.ts, proration.ts,
// store/credit-notes.ts), read defensively: a shape we do not know is shown field by field, never dropped.

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => value !== null && typeof value === 'object' && !Array.isArray(value);
const text = (value: unknown): string => (typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : '');
const has = (value: unknown): boolean => text(value) !== '';
/** True for a decimal that equals `target`; false for anything else (a malformed value is shown, not trusted). */
function equals(value: unknown, target: number): boolean {
  try {
    return toDecimal(text(value)).eq(target);
  } catch {
    return false;
  }
}

function tierRange(tier: Json): string {
  return tier.to === null || tier.to === undefined ? `above ${text(tier.from)}` : `${text(tier.from)} to ${text(tier.to)}`;
}

function tierValue(tier: Json): string {
  const flat = has(tier.flatFee) && !equals(tier.flatFee, 0) ? ` + ${text(tier.flatFee)}` : '';
  // A tier billed in blocks: started blocks × price per block.
  if (has(tier.blocks)) return `${text(tier.blocks)} blocks of ${text(tier.blockSize)} (${text(tier.units)} units) × ${text(tier.unitPrice)}${flat} = ${text(tier.amount)}`;
  return `${text(tier.units)} × ${text(tier.unitPrice)}${flat} = ${text(tier.amount)}`;
}

function quantityRows(b: Json): BreakdownRow[] {
  const rows: BreakdownRow[] = [];
  if (has(b.includedUnits) && !equals(b.includedUnits, 0)) {
    rows.push({ label: 'Included units', value: text(b.includedUnits) }, { label: 'Billable quantity', value: text(b.billableQuantity) });
  }
  switch (b.model) {
    case 'per_unit':
      rows.push({ label: 'Per unit', value: `${text(b.billableQuantity)} × ${text(b.unitPrice)} = ${text(b.amount)}` });
      break;
    case 'graduated': {
      const tiers = Array.isArray(b.tiers) ? b.tiers.filter(isObject) : [];
      tiers.forEach((tier, index) => rows.push({ label: `Tier ${index + 1}: ${tierRange(tier)}`, value: tierValue(tier) }));
      if (tiers.length === 0) rows.push({ label: 'Graduated', value: 'no units to bill' });
      break;
    }
    case 'volume':
      rows.push(isObject(b.tier) ? { label: `Volume tier: ${tierRange(b.tier)}`, value: tierValue(b.tier) } : { label: 'Volume', value: 'no units to bill' });
      break;
    case 'package':
      rows.push({ label: 'Packages', value: `${text(b.packages)} × ${text(b.packagePrice)} (${text(b.packageSize)} units each) = ${text(b.amount)}` });
      break;
  }
  return rows;
}

/** cost_plus (docs/pricing.md): each cost table's share, the cost, then the markup on it. */
function costPlusRows(b: Json): BreakdownRow[] {
  const segments = Array.isArray(b.segments) ? b.segments.filter(isObject) : [];
  const rows: BreakdownRow[] = segments.map((segment) =>
    segment.unitCost === null
      ? { label: 'Not costed', value: `${text(segment.quantity)} units: no cost table in effect` }
      : { label: `Cost from ${text(segment.effectiveFrom).slice(0, 10)}`, value: `${text(segment.quantity)} × ${text(segment.unitCost)} = ${text(segment.cost)}` },
  );
  rows.push({ label: 'Cost plus markup', value: `${text(b.cost)} × (1 + ${text(b.markup)}) = ${text(b.amount)}` });
  return rows;
}

function percentageRows(b: Json): BreakdownRow[] {
  const rows: BreakdownRow[] = [
    { label: 'Events', value: text(b.eventCount) },
    { label: 'Reported value', value: text(b.valueTotal) },
  ];
  const parts = [`${text(b.valueAtRate)} × ${text(b.rate)}`];
  if (Number(b.eventsAtMinimum) > 0) parts.push(`${text(b.eventsAtMinimum)} × ${text(b.minFee)} (minimum fee)`);
  if (Number(b.eventsAtMaximum) > 0) parts.push(`${text(b.eventsAtMaximum)} × ${text(b.maxFee)} (maximum fee)`);
  const freeEvents = has(b.eventsFree) ? Number(b.eventsFree) : 0;
  if (has(b.eventsFree)) rows.push({ label: 'Free allowance', value: `${text(b.eventsFree)} events free, ${text(b.valueFree)} of value free` });
  rows.push({ label: 'Percentage fees', value: `${parts.join(' + ')} = ${text(b.percentageFees)}` });
  if (has(b.fixedFeePerEvent) && !equals(b.fixedFeePerEvent, 0)) {
    rows.push({ label: 'Fixed fees', value: `${Number(b.eventCount) - freeEvents} × ${text(b.fixedFeePerEvent)} = ${text(b.fixedFees)}` });
  }
  return rows;
}

/** A charge's min_amount/max_amount: the price model's rows show what it rated, this row what the bounds did. */
function chargeBoundsRow(bounds: Json): BreakdownRow {
  const limits = [has(bounds.minAmount) ? `minimum ${text(bounds.minAmount)}` : '', has(bounds.maxAmount) ? `maximum ${text(bounds.maxAmount)}` : ''].filter(Boolean).join(', ');
  return { label: 'Charge bounds', value: `${limits}: rated ${text(bounds.ratedAmount)}, adjustment ${text(bounds.adjustment)}` };
}

function genericRows(b: Json): BreakdownRow[] {
  return Object.entries(b)
    .filter(([, value]) => has(value))
    .map(([key, value]) => ({ label: key.replace(/_/g, ' ').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase(), value: text(value) }));
}

/** The explanation rows of one stored line. */
export function breakdownRows(line: Pick<InvoiceLineRow, 'kind' | 'breakdown'>, creditedInvoiceNumber?: string | null): BreakdownRow[] {
  const b: Json = isObject(line.breakdown) ? line.breakdown : {};
  if (line.kind === 'usage' && isObject(b.chargeBounds)) {
    const rated = { ...b, amount: b.chargeBounds.ratedAmount };
    const modelRows = b.model === 'percentage' ? percentageRows(rated) : has(b.billableQuantity) ? quantityRows(rated) : [];
    return [...modelRows, chargeBoundsRow(b.chargeBounds)];
  }
  if (line.kind === 'usage') {
    if (b.model === 'percentage') return percentageRows(b);
    if (b.model === 'cost_plus') return costPlusRows(b);
    if (has(b.billableQuantity)) return quantityRows(b);
  }
  if (line.kind === 'flat_fee') {
    if (b.model === 'flat') {
      const prorated = has(b.prorationFactor) && !equals(b.prorationFactor, 1);
      return prorated
        ? [{ label: 'Prorated', value: `${text(b.fullAmount)} × ${text(b.prorationFactor)} = ${text(b.amount)}` }]
        : [{ label: 'Recurring charge', value: text(b.fullAmount) }];
    }
    if (b.billedInAdvance === true) return [{ label: 'Subscription fee', value: `${text(b.unitPrice)}, billed in advance for the period` }];
  }
  if (line.kind === 'credit' && has(b.bucket)) {
    const allocations = Array.isArray(b.allocations) ? b.allocations.filter(isObject) : [];
    return [
      { label: 'Included credit', value: `${text(b.bucket)}: ${text(b.applied)} applied, ${text(b.remaining)} left` },
      ...allocations.map((allocation) => ({ label: `Covers ${text(allocation.metricCode)}`, value: text(allocation.amount) })),
    ];
  }
  if (line.kind === 'commitment_true_up' && has(b.minimumCommitment)) {
    const fees = has(b.feesCounted) ? `, fees ${text(b.feesCounted)}` : '';
    return [{ label: 'Minimum commitment', value: `${text(b.minimumCommitment)}, usage ${text(b.usageTotal)}${fees}, shortfall ${text(b.shortfall)}` }];
  }
  if (line.kind === 'proration' && has(b.fullFee)) {
    return [
      { label: 'Time', value: `${text(b.remainingSeconds)} s of ${text(b.periodSeconds)} s` },
      { label: 'Prorated', value: `${text(b.fullFee)} × ${text(b.remainingSeconds)} / ${text(b.periodSeconds)} = ${text(b.exactAmount)}` },
    ];
  }
  if (line.kind === 'discount' && has(b.percentOff)) {
    return [{ label: 'Discount', value: `${text(b.percentOff)} % of ${text(b.discountedAmount)}` }];
  }
  if (line.kind === 'refund' && has(b.paid)) {
    return [
      ...(creditedInvoiceNumber ? [{ label: 'Credits invoice', value: creditedInvoiceNumber }] : []),
      { label: 'Paid on that invoice', value: plainDecimal(text(b.paid)) },
      { label: 'Credited before', value: plainDecimal(text(b.previously_credited)) },
    ];
  }
  return genericRows(b);
}

// ---------------------------------------------------------------------------------------------------------------

/** What became of a credit's money: refunded, refused and credited to the wallet, pending, or just owed. */
function settlementNote(invoice: InvoiceDocumentInput['invoice'], refund: InvoiceDocumentInput['refund'], creditNote: boolean): string {
  const lead = creditNote ? 'The amounts are credited to the customer' : 'It is owed to the customer';
  // A caller that did not look the refund up: the status is all there is.
  if (refund === undefined) return `${lead}${invoice.status === 'paid' ? ' and were refunded' : ''}.`;
  if (refund === null) return `${lead}.`;
  // One sentence per outcome, each with the sum of its own parts (succeeded, refused, pending, in that order): parts
  // that ended differently are never summed under one status.
  const parts = refund.parts && refund.parts.length > 0 ? refund.parts : [refund];
  const outcomes = (['succeeded', 'failed', 'pending'] as const)
    .map((status) => {
      const of = parts.filter((part) => part.status === status);
      if (of.length === 0) return null;
      const amount = `${formatMoney(sumMoney(of.map((part) => toDecimal(part.amount))), invoice.currency)} ${invoice.currency}`;
      return status === 'succeeded'
        ? `${amount} was refunded to the original payment`
        : status === 'failed'
          ? `the refund of ${amount} to the original payment was refused, so it was added to the customer's credit balance instead`
          : `the refund of ${amount} to the original payment is pending`;
    })
    .filter((outcome): outcome is string => outcome !== null);
  const outcome = `${outcomes.join('; ')}.`;
  return creditNote ? `${lead}: ${outcome}` : `${outcome.charAt(0).toUpperCase()}${outcome.slice(1)}`;
}

/** The document of an invoice or credit note. Throws InvoiceDocumentError when the lines do not add up to the total. */
export function buildInvoiceDocument(input: InvoiceDocumentInput): InvoiceDocument {
  const { invoice, customer } = input;
  const currency = invoice.currency;
  const lines: DocumentLine[] = [...input.lines]
    .sort((a, b) => a.position - b.position)
    .map((line, index) => ({
      number: index + 1,
      kind: line.kind,
      description: line.description,
      period: formatPeriod(line.period_start, line.period_end),
      quantity: plainDecimal(line.quantity),
      amount: formatMoney(toDecimal(line.amount), currency),
      breakdown: breakdownRows(line, input.creditedInvoiceNumber),
    }));
  const total = formatMoney(toDecimal(invoice.total), currency);
  const linesTotal = formatMoney(sumMoney(lines.map((line) => toDecimal(line.amount))), currency);
  if (linesTotal !== total) {
    throw new InvoiceDocumentError(`invoice ${invoice.id}: its lines add up to ${linesTotal} ${currency}, its total is ${total} ${currency}`);
  }

  const creditNote = invoice.kind === 'credit_note';
  const notes: string[] = [];
  if (invoice.status === 'draft') {
    // Finalized but not numbered yet (docs/scaling.md): final lines, still not an issued invoice.
    notes.push(invoice.finalization_seq ? 'Not issued yet: its number is being assigned.' : 'Draft: not issued yet; the lines may still change.');
  }
  if (invoice.status === 'void') notes.push(creditNote ? 'Void: this credit note was not refunded.' : 'Void: this invoice is canceled.');
  // A credit (a credit note, or an invoice whose total is negative) says what became of the money, from its refund:
  // "paid" also means a refund the gateway refused and the wallet took (store/credit-notes.ts settleRefund), and
  // such a document told the customer the money was back on their card when it was not.
  const creditTotal = !creditNote && toDecimal(invoice.total).isNegative();
  if (creditNote) {
    notes.push(`Credits invoice ${input.creditedInvoiceNumber ?? invoice.credited_invoice_id ?? ''}`.trim() + '.');
    if (invoice.reason) notes.push(`Reason: ${invoice.reason}`);
  }
  if (creditTotal) notes.push(`This invoice is a credit of ${formatMoney(toDecimal(invoice.total).negated(), currency)} ${currency} to the customer.`);
  // A credit total taken off an unpaid invoice of its time (store/credit-total-refunds.ts) is netted there, not refunded.
  const takenOffInvoice = creditTotal && !input.refund && invoice.credited_invoice_id ? (input.creditedInvoiceNumber ?? invoice.credited_invoice_id) : null;
  // Only in part (that invoice owed less than the credit): the part taken off, then what became of the rest. Refunded
  // in full after all (the charge was at the gateway for the whole invoice), the refund alone says it.
  const part = creditTotal && invoice.credited_invoice_id && invoice.amount_taken_off ? toDecimal(invoice.amount_taken_off) : null;
  const refundedAll = input.refund ? toDecimal(input.refund.amount).gte(toDecimal(invoice.total).negated()) : false;
  if (part && !refundedAll) {
    notes.push(`${formatMoney(part, currency)} ${currency} of it is taken off what invoice ${input.creditedInvoiceNumber ?? invoice.credited_invoice_id} of the same time owes.`);
    if (input.refund) notes.push(settlementNote(invoice, input.refund, false));
    else notes.push(`The other ${formatMoney(toDecimal(invoice.total).negated().minus(part), currency)} ${currency} is owed to the customer.`);
  } else if (takenOffInvoice) notes.push(`It is taken off what invoice ${takenOffInvoice} of the same time owes, instead of being refunded.`);
  else if ((creditNote || creditTotal) && invoice.status !== 'void') notes.push(settlementNote(invoice, input.refund, creditNote));
  const number = invoice.number ?? 'DRAFT';
  return {
    kind: creditNote ? 'credit_note' : 'invoice',
    title: KIND_TITLES[invoice.kind] ?? 'Invoice',
    number,
    status: invoice.status,
    currency,
    issuer: input.issuer ?? 'meterloop',
    issuedAt: invoice.finalized_at ? formatInstant(invoice.finalized_at) : null,
    period: formatPeriod(invoice.period_start, invoice.period_end),
    customer: { name: customer.name, externalId: customer.external_id, email: customer.email ?? null },
    notes,
    lines,
    total,
    fileName: (invoice.number ?? `draft-${invoice.id}`).replace(/[^A-Za-z0-9._-]/g, '_'),
  };
}
