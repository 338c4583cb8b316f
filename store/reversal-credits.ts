/**
 * The credit lines an invoice carries for outcomes reversed after their period was invoiced (docs/pricing.md):
 * one set per affected period, computed by domain/reversal-credits.ts, and the reversals marked as credited in
 * the invoice's own transaction, so each is credited exactly once.
 */
import { stretchAllowances } from '../domain/allowances';
import { closureAllowanceShare } from './plan-changes';
import type { DimensionalCharge, DimensionalUsage } from '../domain/dimensions';
import { combinationOf } from '../domain/dimensions';
import type { DraftInvoiceLine } from '../domain/invoice';
import { reversalCreditLines, splitCreditLines, usageLeftToPay, withContributions, type ReversedContribution } from '../domain/reversal-credits';
import { Dec, formatMoney, sumMoney, toDecimal } from '../domain/money';
import { CREDIT_LINE_DESCRIPTION } from '../domain/rating';
import { findMetricsByCode, findPlan, type MetricRow, type PlanRow } from './catalog';
import { amountOwedAfterCreditNotes, CREDIT_NOTE_KIND } from './credit-notes';
import { invoiceLinesAsDrafts, type InvoiceRow } from './invoices';
import { lastFinalizedRerateOfClosure, unpaidAdjustmentsOfPeriod } from './rerates';
import { invoicedReversals, markReversalsCredited, reversalsOfClosure, type InvoicedReversal } from './reversals';
import type { Knex } from 'knex';
import type { Transaction } from './transactions';
import { numericTextFor, type MetricUsage } from './usage';
import { plannedReversalCreditToWallet, reversalCreditToWallet } from './wallet-draws';

/**
 * The invoice being written that bills a period's usage itself (a reversal that arrived between the period's close and
 * its invoice): its period start and the discount it gives (null: none), which no stored invoice shows yet.
 */
export interface UsageBilledHere {
  readonly periodStart: string;
  readonly percentOff: string | null;
}

export async function reversalCreditsFor(
  trx: Transaction,
  subscriptionId: string,
  customerId: string,
  creditedOn: string,
  fallbackPlan: PlanRow,
  billedHere?: UsageBilledHere,
  settleUnpaid?: SettleUnpaidInvoice,
): Promise<DraftInvoiceLine[]> {
  const reversals = await invoicedReversals(trx, subscriptionId, customerId);
  if (reversals.length === 0) return [];
  const lines: DraftInvoiceLine[] = [];
  for (const group of byClosure(reversals)) {
    // The closure's row lock, after the reversals' (the order a re-rating being carried out takes them in): a
    // re-rating that changes what the period bills commits before this reads its plan, or sees these credited.
    await lockClosure(trx, group[0].closeId);
    const { plan, period, creditLines: owed } = await owedCreditLines(trx, subscriptionId, group, fallbackPlan, billedHere);
    // What the unpaid invoice of the period still owes is settled first (a credit note against it); only the rest is
    // credited here and given back to the wallet (splitOffUnpaid).
    const { unpaid, creditLines } = settleUnpaid ? await splitOffUnpaid(trx, subscriptionId, group[0].periodStart, owed, plan.currency, { lock: true }) : { unpaid: [], creditLines: owed };
    if (settleUnpaid) for (const settlement of unpaid) await settleUnpaid(settlement, group);
    lines.push(...creditLines);
    // What the wallet had paid for the period goes back to it first (docs/wallets.md).
    lines.push(...(await reversalCreditToWallet(trx, { subscriptionId, customerId, currency: plan.currency, creditedOn, period, creditLines })));
  }
  await markReversalsCredited(trx, reversals.filter((reversal) => !reversal.credited).map((reversal) => reversal.reversalRowId), creditedOn);
  return lines;
}

/**
 * The lines the subscription's next invoice that bills usage will carry for outcomes reversed after their period was
 * invoiced, computed as reversalCreditsFor computes them (the credit lines, and the line offsetting what of them goes
 * back to the wallet draw that paid the period, as planned now): what the usage preview and the wallet's pending usage
 * project. A read: nothing is locked, marked or given back. Left out, the preview said 1.10 where the invoice billed
 * 1.10 - 5.30 of usage, and the wallet showed 1.10 pending where the invoice (-4.20) drew nothing.
 */
export async function pendingReversalCredits(db: Knex, subscriptionId: string, customerId: string, fallbackPlan: PlanRow, billedHere?: UsageBilledHere): Promise<DraftInvoiceLine[]> {
  const reversals = await invoicedReversals(db, subscriptionId, customerId, { lock: false });
  const lines: DraftInvoiceLine[] = [];
  for (const group of byClosure(reversals)) {
    const { plan, period, creditLines: owed } = await owedCreditLines(db, subscriptionId, group, fallbackPlan, billedHere);
    // What goes on the unpaid invoice that billed the period (a credit note, reversalCreditsFor) is not on the next.
    const { creditLines } = await splitOffUnpaid(db, subscriptionId, group[0].periodStart, owed, plan.currency, { lock: false });
    lines.push(...creditLines, ...(await plannedReversalCreditToWallet(db, { subscriptionId, customerId, currency: plan.currency, period, creditLines })));
  }
  return lines;
}

/** What an unpaid invoice of a period takes of its reversal credit: that invoice, the lines (positive amount). */
export interface UnpaidSettlement {
  readonly invoice: InvoiceRow;
  readonly creditLines: DraftInvoiceLine[];
  readonly amount: string;
}

/** Settles part of a closure's reversal credit on the unpaid invoice of its period (a credit note against it). */
export type SettleUnpaidInvoice = (settlement: UnpaidSettlement, reversals: readonly InvoicedReversal[]) => Promise<void>;

/**
 * A period's reversal credit, split at what the invoice that billed its usage as a whole (period, closing or proration
 * invoice, as discountOnPeriodUsage picks it) still owes for that usage when it is unpaid, in dunning (`open`) or given
 * up (`uncollectible`): that much is taken off it (`unpaid`), and the rest (`creditLines`) is credited as a credit of a
 * paid invoice is (on the next invoice, or the note after the end, with the wallet's give-back). The outcomes it owes
 * for were never paid: credited on the next invoice, the customer got back what they never paid (8.00 of calls
 * uncollectible, 5 of them reversed: the next invoice billed 10.00 - 5.00). A credit larger than what it owes (the
 * wallet, a threshold invoice or a credit paid part of it) went whole on the next invoice: 5.00 of prepaid credit paid
 * 8 calls, 3.00 written off, 5 reversed, and all 5.00 went back to the credit; now 3.00 settles the invoice and 2.00
 * goes back. Then the period's uncollectible adjustments take what is left, up to what each owes (below). `lock`: each
 * invoice's row lock, so what it owes is read as the note will take it (a payment takes it too).
 */
async function splitOffUnpaid(
  db: Knex,
  subscriptionId: string,
  periodStart: Date,
  creditLines: DraftInvoiceLine[],
  currency: string,
  { lock }: { lock: boolean },
): Promise<{ unpaid: UnpaidSettlement[]; creditLines: DraftInvoiceLine[] }> {
  const unpaid: UnpaidSettlement[] = [];
  let rest = creditLines;
  const creditLeft = () => sumMoney(rest.map((line) => toDecimal(line.amount))).negated();
  // Takes up to `owed` of what is left of the credit off the unpaid invoice.
  const takeOff = (invoice: InvoiceRow, owed: Dec) => {
    const credit = creditLeft();
    if (owed.lte(0) || credit.lte(0)) return;
    if (owed.gte(credit)) {
      unpaid.push({ invoice, creditLines: rest, amount: formatMoney(credit, currency) });
      rest = [];
      return;
    }
    const split = splitCreditLines(rest, owed.toFixed(), currency);
    unpaid.push({ invoice, creditLines: split.settled, amount: formatMoney(owed, currency) });
    rest = split.rest;
  };
  if (creditLeft().lte(0)) return { unpaid, creditLines };
  const billed = await unpaidInvoiceOfPeriod(db, await invoiceThatBilledPeriodUsage(db, subscriptionId, periodStart), lock);
  if (billed) takeOff(billed, await owedForPeriodUsage(db, billed, periodStart, currency));
  // Then the period's adjustments dunning gave up on (an upward re-rating's, late usage's), newest first, as a
  // re-rating's credit is (activities/rerate-refund.ts creditUnpaidAdjustments): their money was never collected.
  // Credited on the next invoice instead, a +12.40 adjustment given up, then 12.40 of its outcomes reversed: March
  // billed 20.00 - 12.40 = 7.60 and the customer kept 12.40 never paid. Its note counts as a correction of the period
  // for the wallet's give-back (store/wallet-draws.ts walletLoweredLines), so the adjustment's raise is not also cash.
  // One still open (its charge at the gateway, or in dunning) is collected in full and the credit goes on the next
  // invoice, as before.
  for (const adjustmentId of await unpaidAdjustmentsOfPeriod(db, subscriptionId, periodStart)) {
    if (creditLeft().lte(0)) break;
    const adjustment = await unpaidInvoiceOfPeriod(db, { id: adjustmentId }, lock, ['uncollectible']);
    if (adjustment) takeOff(adjustment, await amountOwedAfterCreditNotes(db, adjustment));
  }
  return { unpaid, creditLines: rest };
}

/**
 * The invoice, read under its row lock when `lock`, when it is unpaid (in dunning or given up; `only`: these of them);
 * else undefined. An adjustment is locked only when it is one this takes the credit off.
 */
async function unpaidInvoiceOfPeriod(db: Knex, found: Pick<InvoiceRow, 'id'> | undefined, lock: boolean, only?: readonly string[]): Promise<InvoiceRow | undefined> {
  if (!found) return undefined;
  const query = only ? db<InvoiceRow>('invoices').where({ id: found.id }).whereIn('status', only) : db<InvoiceRow>('invoices').where({ id: found.id });
  const invoice = lock ? await query.forUpdate().first() : await query.first();
  return invoice && (invoice.status === 'open' || invoice.status === 'uncollectible') ? invoice : undefined;
}

/** What the unpaid invoice that billed the period's usage as a whole still owes for that usage. */
async function owedForPeriodUsage(db: Knex, billed: InvoiceRow, periodStart: Date, currency: string): Promise<Dec> {
  // What it owes for this usage: the fee it also bills is not the outcomes', and what prepaid credit paid of them goes
  // back to it (a 20.00 fee unpaid, 7.40 of usage the wallet paid reversed: 7.40 back to the wallet, 20.00 owed).
  // Less what earlier reversals of the period already took off it: read from its lines alone, a second reversal
  // settled the fee with prepaid credit (20.00 fee, 8 calls, 5.00 prepaid: 2 then 3 calls reversed left 18.00 owed and
  // nothing back to the credit, where 5 at once leave 20.00 owed and 2.00 back).
  const usageLeft = usageLeftToPay(await invoiceLinesAsDrafts(db, billed.id), periodStart.toISOString(), currency).minus(await reversalsTakenOff(db, billed.id, periodStart));
  return Dec.min(await amountOwedAfterCreditNotes(db, billed), usageLeft);
}

/** What credit notes against an invoice (void ones aside) already took off it for reversed outcomes of a period. */
async function reversalsTakenOff(db: Knex, invoiceId: string, periodStart: Date): Promise<Dec> {
  const [{ taken }] = await db('invoice_lines as l')
    .join('invoices as n', 'n.id', 'l.invoice_id')
    .where({ 'n.credited_invoice_id': invoiceId, 'n.kind': CREDIT_NOTE_KIND, 'l.kind': 'reversal_credit', 'l.period_start': periodStart })
    .whereNot('n.status', 'void')
    .sum<{ taken: string | null }[]>('l.amount as taken');
  return toDecimal(taken ?? '0');
}

/** The reversals grouped by the closed period they take outcomes back from, in the order they were read. */
function byClosure(reversals: readonly InvoicedReversal[]): InvoicedReversal[][] {
  const byClose = new Map<string, InvoicedReversal[]>();
  for (const reversal of reversals) byClose.set(reversal.closeId, [...(byClose.get(reversal.closeId) ?? []), reversal]);
  return [...byClose.values()];
}

/** One closed period's credit lines for its reversals not credited yet, at the discount of the invoice that billed it. */
async function owedCreditLines(db: Knex, subscriptionId: string, group: readonly InvoicedReversal[], fallbackPlan: PlanRow, billedHere?: UsageBilledHere) {
  const { plan, period, creditLines: listCreditLines } = await closureCreditLines(db, group, fallbackPlan, (reversal) => !reversal.credited);
  // The outcomes were paid at the discount of the invoice that billed their period: credited at the list price,
  // the customer got back more than they paid (-10.00 for 7.00 paid at 30 % off).
  const percentOff =
    billedHere && new Date(billedHere.periodStart).getTime() === group[0].periodStart.getTime()
      ? billedHere.percentOff
      : await discountOnPeriodUsage(db, subscriptionId, group[0].periodStart);
  const creditLines = percentOff ? listCreditLines.map((line) => discountedLine(line, percentOff, plan.currency)) : listCreditLines;
  return { plan, period, creditLines };
}

/**
 * The retention discount (percent off) of the invoice that billed the period's usage as a whole (period, closing or
 * proration invoice, as invoiceThatBilled and the wallet's give-back pick it), or null when it gave none.
 */
export async function discountOnPeriodUsage(trx: Knex, subscriptionId: string, periodStart: Date): Promise<string | null> {
  const billed = await invoiceThatBilledPeriodUsage(trx, subscriptionId, periodStart);
  if (!billed) return null;
  const discount: { percent_off: string | null } | undefined = await trx('invoice_lines').where({ invoice_id: billed.id, kind: 'discount' }).first(trx.raw("breakdown ->> 'percentOff' AS percent_off"));
  return discount?.percent_off ?? null;
}

/** The invoice that billed the period's usage as a whole: the first not void of its period, closing or proration invoices with usage of the period. */
async function invoiceThatBilledPeriodUsage(db: Knex, subscriptionId: string, periodStart: Date): Promise<InvoiceRow | undefined> {
  return db<InvoiceRow>('invoices as i')
    .where('i.subscription_id', subscriptionId)
    .whereIn('i.kind', ['period', 'closing', 'proration'])
    .whereNot('i.status', 'void')
    .whereExists(db('invoice_lines as l').whereRaw('l.invoice_id = i.id').andWhere({ 'l.kind': 'usage', 'l.period_start': periodStart }).select(db.raw('1')))
    .orderBy('i.created_at')
    .first('i.*');
}

/**
 * A credit (or correction) line at what the discounted invoice billed: its amount less the discount's share of it,
 * rounded as the discount line was (so never more than was paid). `listAmount` keeps the undiscounted amount:
 * re-rating compares list prices with list prices (activities/rerating.ts leaves the discount out of what was
 * invoiced), so it counts the line at that amount, or it gave the discount's share back a second time.
 */
export function discountedLine(line: DraftInvoiceLine, percentOff: string, currency: string): DraftInvoiceLine {
  const listAmount = toDecimal(line.amount);
  const discount = toDecimal(formatMoney(listAmount.times(toDecimal(percentOff)).dividedBy(100), currency));
  return { ...line, amount: formatMoney(listAmount.minus(discount), currency), breakdown: { ...line.breakdown, listAmount: line.amount, discountPercentOff: percentOff } };
}

/** What a given reversal credit or correction line counts for in re-rating: its list amount (before a discount), signed as on an invoice. */
export function listAmountOf(breakdown: Record<string, unknown> | null | undefined): string | null {
  const listAmount = breakdown?.listAmount;
  return typeof listAmount === 'string' ? toDecimal(listAmount).toFixed() : null;
}

/**
 * The plan a closed period's outcomes are billed at now, so the plan its reversal credits are priced at: the last
 * carried-out re-rating's (it rated the period again at its plan), else the closure's. Priced at the closure's plan
 * after a re-rating had corrected the price, a reversal credited the old price: more than the outcome was billed.
 */
export async function reversalPricePlanOf(trx: Knex, closeId: string, closurePlanId: string | null, fallbackPlan: PlanRow): Promise<PlanRow> {
  const rerated = await lastFinalizedRerateOfClosure(trx, closeId);
  const planId = rerated?.proposal?.planId ?? closurePlanId;
  return planId ? findPlan(trx, planId) : fallbackPlan;
}

export interface PeriodReversalCredits {
  /** What the credits gave (negative lines), as given, plus the ones still owed priced at the re-rating's plan. */
  readonly lines: DraftInvoiceLine[];
  /** The reversals of the period credited so far (by an invoice line or a credit note). */
  readonly creditedIds: string[];
}

/**
 * Every credit the reversal path gave, or will give, for one closed period: the credits already given as they were
 * given (each was priced at the plan in effect when it was given: a re-rating may have changed it since), and the
 * ones still owed rated at `ratePlan`, the plan of the re-rating asking, with the late events it bills (once it is
 * carried out, they are credited at its plan, against the usage with those events). Re-rating counts them as already invoiced (a re-rating rates the period without reversed outcomes;
 * without them it credited those outcomes a second time).
 */
export async function reversalCreditsOfPeriod(trx: Transaction, closeId: string, ratePlan: PlanRow, lateEventIds: readonly string[] = []): Promise<PeriodReversalCredits> {
  const reversals = await reversalsOfClosure(trx, closeId);
  if (reversals.length === 0) return { lines: [], creditedIds: [] };
  const given = await givenReversalCredits(trx, closeId);
  const owed = reversals.some((reversal) => !reversal.credited)
    ? (await closureCreditLines(trx, reversals, ratePlan, (reversal) => !reversal.credited, { plan: ratePlan, lateEventIds })).creditLines
    : [];
  return { lines: [...given, ...owed], creditedIds: reversals.filter((reversal) => reversal.credited).map((reversal) => reversal.reversalRowId).sort() };
}

/**
 * The reversal credit lines given for one closed period, signed as on an invoice (negative): lines of the
 * subscription's later invoices, and lines of its reversal credit notes (stored positive, kind reversal_credit; the
 * credited line's kind is read back from the period invoice's line of the same description).
 */
async function givenReversalCredits(trx: Transaction, closeId: string): Promise<DraftInvoiceLine[]> {
  const rows: { kind: string; metric_code: string | null; description: string; quantity: string; amount: string; breakdown: Record<string, unknown>; period_start: Date; period_end: Date; on_credit_note: boolean }[] = await trx('invoice_lines as l')
    .join('invoices as i', 'i.id', 'l.invoice_id')
    .join('usage_period_closures as c', (join) => join.on('c.subscription_id', 'i.subscription_id').andOn('c.period_start', 'l.period_start'))
    .where('c.id', closeId)
    .whereNot('i.status', 'void')
    .whereRaw("(l.breakdown ->> 'reversal') = 'true'")
    .orderBy(['i.created_at', 'l.position'])
    .select('l.kind', 'l.metric_code', 'l.description', 'l.quantity', 'l.amount', 'l.breakdown', 'l.period_start', 'l.period_end', trx.raw(`i.kind = '${CREDIT_NOTE_KIND}' AS on_credit_note`));
  return rows.map((row) => ({
    kind: (row.on_credit_note ? (row.metric_code === null ? nonUsageKindOf(row.description) : 'usage') : row.kind) as DraftInvoiceLine['kind'],
    description: row.description,
    metricCode: row.metric_code,
    quantity: row.quantity,
    // At its list amount when a discount lowered it (the breakdown keeps the invoice's sign, also on a credit note).
    amount: listAmountOf(row.breakdown) ?? (row.on_credit_note ? toDecimal(row.amount).negated().toFixed() : toDecimal(row.amount).toFixed()),
    periodStart: row.period_start.toISOString(),
    periodEnd: row.period_end.toISOString(),
    breakdown: row.breakdown,
  }));
}

/** A credit note's reversal line of a non-usage line: the included credit's, or else a commitment true-up's. */
function nonUsageKindOf(description: string): string {
  return description.startsWith(CREDIT_LINE_DESCRIPTION) ? 'credit' : 'commitment_true_up';
}

/**
 * Locks every reversal of the closure's outcomes that arrived after the close (the rows an invoice or credit note
 * locks to credit them), then the closure (which a credit takes before it reads the period's plan, so a reversal
 * stored since is credited after this transaction, against it) and returns the ids of those credited. Ids as
 * reversalsOfClosure gives them.
 */
export async function lockCreditedReversalsOfClosure(trx: Transaction, closeId: string): Promise<string[]> {
  const result = await trx.raw<{ rows: { id: string; credited: boolean }[] }>(
    `SELECT r.id::text AS id, r.reversal_credited_on IS NOT NULL AS credited
     FROM usage_period_closures c
     JOIN usage_events r ON r.customer_id = c.customer_id AND r.reverses_event_id IS NOT NULL
     JOIN usage_events o ON o.customer_id = r.customer_id AND o.event_id = r.reverses_event_id AND o.period_close_id = c.id
     WHERE c.id = ? AND r.received_at > c.closed_at
     ORDER BY r.id
     FOR UPDATE OF r`,
    [closeId],
  );
  await lockClosure(trx, closeId);
  return result.rows.filter((row) => row.credited).map((row) => row.id).sort();
}

async function lockClosure(trx: Transaction, closeId: string): Promise<void> {
  await trx('usage_period_closures').where({ id: closeId }).forUpdate().first('id');
}

/** One closure's credit lines for the reversals `isNew` picks, on top of the other (already credited) ones. */
async function closureCreditLines(
  trx: Knex,
  group: readonly InvoicedReversal[],
  fallbackPlan: PlanRow,
  isNew: (reversal: InvoicedReversal) => boolean,
  asRerated?: { plan: PlanRow; lateEventIds: readonly string[] },
) {
  const closure = group[0];
  const plan = asRerated?.plan ?? (await reversalPricePlanOf(trx, closure.closeId, closure.planId, fallbackPlan));
  const charges = plan.charges as DimensionalCharge[];
  const metrics = await findMetricsByCode(trx, [...new Set(charges.map((charge) => charge.metricCode))]);
  const contributions = (event: ReversibleEvent) => metrics.flatMap((metric) => contributionOf(metric, event));
  const period = { start: closure.periodStart.toISOString(), end: closure.periodEnd.toISOString() };
  const lateBilled = await lateEventsBilledInto(trx, closure.closeId, asRerated?.lateEventIds ?? []);
  const creditLines = reversalCreditLines({
    currency: plan.currency,
    charges,
    // The allowances the stretch was billed with: its share when a plan change cut the period.
    ...stretchAllowances(plan, await closureAllowanceShare(trx, closure.closeId)),
    closedUsage: await unflooredClosedUsage(trx, closure.closeId, closure.totals as Record<string, MetricUsage>, metrics, lateBilled),
    // The close's totals lack the late events re-ratings billed since: without them, a reversal was credited
    // against less usage than was billed (nothing at all while the closed usage alone stayed inside the credit).
    billedLate: lateBilled.flatMap(contributions),
    alreadyCredited: group.filter((reversal) => !isNew(reversal)).flatMap(contributions),
    newlyReversed: group.filter(isNew).flatMap(contributions),
    period,
  });
  return { plan, period, creditLines };
}

/** An event as its contribution to a metric reads it. */
type ReversibleEvent = Pick<InvoicedReversal, 'eventType' | 'properties' | 'occurredAt'> & { readonly id?: string };

/**
 * The closed usage, with a corrections sum (`allow_negative`) the close floored at 0 (the sum, or one of its
 * combinations) at its real, negative, sum: the events the close counted, added up as contributions (the way a
 * reversal takes one off). From the floor, a reversed negative correction added its whole value to 0: +10 and -15
 * were billed 0, and reversing the -15 billed 15 where the period is worth 10. The credit's rating floors at 0.
 */
async function unflooredClosedUsage(
  trx: Knex,
  closeId: string,
  totals: Record<string, MetricUsage>,
  metrics: readonly MetricRow[],
  lateBilled: readonly ReversibleEvent[],
): Promise<DimensionalUsage[]> {
  const usage = Object.entries(totals).map(([metricCode, metricUsage]) => ({ metricCode, ...metricUsage }) as DimensionalUsage);
  const floored = (quantity: string) => toDecimal(quantity).isZero();
  const corrections = metrics.filter((metric) => {
    const closed = usage.find((entry) => entry.metricCode === metric.code);
    return metric.aggregation === 'sum' && metric.allow_negative && closed && (floored(closed.quantity) || (closed.groups ?? []).some((group) => floored(group.quantity)));
  });
  if (corrections.length === 0) return usage;
  const counted = await eventsCountedByClose(trx, closeId, [...new Set(corrections.map((metric) => metric.event_type))], lateBilled);
  return usage.map((closed) => {
    const metric = corrections.find((entry) => entry.code === closed.metricCode);
    if (!metric) return closed;
    const zero: DimensionalUsage = { ...closed, quantity: '0', ...(closed.groups ? { groups: [] } : {}), ...(closed.eventValues ? { eventValues: [] } : {}) };
    return withContributions([zero], counted.flatMap((event) => contributionOf(metric, event)))[0];
  });
}

/**
 * The events of these types the close counted: claimed by it, not reversals, and not reversed before it (a reversal
 * received after the close left its original counted, and billed). Not the late events a re-rating claimed into the
 * closure since (`lateBilled`): they are added as billed late.
 */
async function eventsCountedByClose(trx: Knex, closeId: string, eventTypes: readonly string[], lateBilled: readonly ReversibleEvent[]): Promise<ReversibleEvent[]> {
  const result = await trx.raw<{ rows: ReversibleEvent[] }>(
    `SELECT e.id::text AS id, e.event_type AS "eventType", e.properties, e.occurred_at AS "occurredAt"
     FROM usage_period_closures c
     JOIN usage_events e ON e.period_close_id = c.id
     LEFT JOIN usage_events r ON r.customer_id = e.customer_id AND r.event_id = e.reversed_by_event_id
     WHERE c.id = ? AND e.event_type = ANY(?::text[]) AND e.reverses_event_id IS NULL
       AND (e.reversed_by_event_id IS NULL OR r.received_at > c.closed_at)
       AND NOT (e.id::text = ANY(?::text[]))
     ORDER BY e.id`,
    [closeId, [...eventTypes], lateBilled.flatMap((event) => (event.id ? [event.id] : []))],
  );
  return result.rows;
}

/**
 * The late events carried-out re-ratings of the closure's period claimed into it (their proposals name them;
 * claimLateEvents skips one something else claimed first, hence the closure check): billed after the close. And
 * `unclaimed`, the ones a re-rating being proposed bills (still unclaimed; claimed when it is carried out).
 */
async function lateEventsBilledInto(trx: Knex, closeId: string, unclaimed: readonly string[]): Promise<ReversibleEvent[]> {
  const result = await trx.raw<{ rows: ReversibleEvent[] }>(
    `SELECT e.id::text AS id, e.event_type AS "eventType", e.properties, e.occurred_at AS "occurredAt"
     FROM usage_events e
     WHERE e.reverses_event_id IS NULL
       AND ((e.period_close_id = ?
             AND e.id::text IN (SELECT jsonb_array_elements_text(r.proposal -> 'lateEventIds')
                                FROM rerates r JOIN usage_period_closures c ON c.subscription_id = r.subscription_id
                                WHERE c.id = ? AND r.status = 'finalized' AND (r.proposal -> 'usagePeriod' ->> 'start')::timestamptz = c.period_start))
            OR (e.period_close_id IS NULL AND e.id::text = ANY(?::text[])))
     ORDER BY e.id`,
    [closeId, closeId, [...unclaimed]],
  );
  return result.rows;
}

/**
 * An event's property value as the close read it: the text Postgres prints out of jsonb, when it matches the metric's
 * numeric pattern (store/usage.ts numericTextFor), else null: the close counted it as absent. Read with String(), an
 * event stored before the current checks counted for nothing at the close but its reversal took its value off what
 * was billed (13 integer digits, or -3 on a metric without negatives), or threw on a word and stopped the invoice.
 */
function readableValue(metric: MetricRow, raw: unknown): string | null {
  const text = typeof raw === 'string' ? raw : typeof raw === 'number' && Number.isFinite(raw) ? new Dec(JSON.stringify(raw)).toFixed() : null;
  return text !== null && new RegExp(numericTextFor(metric)).test(text) ? text : null;
}

/** What a reversed event had added to a metric: count and sum metrics only (a max or a latest cannot be undone). */
function contributionOf(metric: MetricRow, reversal: ReversibleEvent): ReversedContribution[] {
  if (metric.event_type !== reversal.eventType) return [];
  if (!Object.entries(metric.filters ?? {}).every(([name, value]) => reversal.properties[name] === value)) return [];
  if (metric.aggregation !== 'count' && metric.aggregation !== 'sum') return [];
  const value = metric.property === null ? null : readableValue(metric, reversal.properties[metric.property]);
  // A sum, and a count of a property (count(value)), counted only the events whose value the close could read.
  if (metric.property !== null && value === null) return [];
  const groupBy = metric.group_by ?? [];
  return [
    {
      metricCode: metric.code,
      aggregation: metric.aggregation,
      value,
      occurredAt: reversal.occurredAt.toISOString(),
      ...(groupBy.length ? { dimensions: combinationOf(reversal.properties, groupBy), groupBy } : {}),
    },
  ];
}
