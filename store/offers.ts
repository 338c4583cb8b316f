/** Retention and win-back offers made to a subscription's customer, and their answers. */
import type { Knex } from 'knex';
import { DraftInvoiceLine, PeriodBounds, renewalInvoiceLines } from '../domain/invoice';
import { discountLine } from '../domain/proration';
import type { Charge } from '../domain/rating';
import { cachedPlan } from './read-caches';
import { enqueueOutboxEvent, writeAudit } from './outbox';

export type OfferKind = 'retention' | 'win_back';

export interface NewOffer {
  readonly subscriptionId: string;
  readonly customerId: string;
  readonly kind: OfferKind;
  readonly terms: Record<string, unknown>;
  /** Workflow time, so "once in twelve months" is judged on the subscription's own clock. */
  readonly at: string;
  readonly expiresAt: string;
}

export interface OfferAnswer {
  readonly subscriptionId: string;
  readonly kind: OfferKind;
  readonly answer: 'accepted' | 'declined' | 'expired';
  readonly at: string;
  readonly requestedBy: string;
}

const RETENTION_OFFER_COOLDOWN_MONTHS = 12;

/**
 * Records an offer and queues its customer-facing event. A retention offer is made at most once in twelve months
 * per customer: `offered: false` when one was made more recently. The same offer recorded again is `offered: true`
 * with the first one's expiry and writes nothing: a retried activity, or a retried workflow task whose clock (and so
 * `at`) moved on; the subscription's open offer of that kind, unanswered and unexpired, is that offer.
 */
export async function recordOffer(db: Knex, offer: NewOffer): Promise<{ offered: boolean; expiresAt: string }> {
  return db.transaction(async (trx) => {
    // Serialize offers per customer so two concurrent cancellations cannot both get one.
    await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [`offer:${offer.customerId}`]);
    const existing = await trx('customer_offers')
      .where({ subscription_id: offer.subscriptionId, kind: offer.kind })
      .whereNull('answer')
      .andWhere('expires_at', '>', new Date(offer.at))
      .orderBy('offered_at', 'desc')
      .first();
    if (existing) return { offered: true, expiresAt: (existing.expires_at as Date).toISOString() };
    if (offer.kind === 'retention') {
      const since = new Date(offer.at);
      since.setUTCMonth(since.getUTCMonth() - RETENTION_OFFER_COOLDOWN_MONTHS);
      const recent = await trx('customer_offers').where({ customer_id: offer.customerId, kind: 'retention' }).andWhere('offered_at', '>', since).first();
      if (recent) return { offered: false, expiresAt: offer.expiresAt };
    }
    await trx('customer_offers').insert({
      customer_id: offer.customerId,
      subscription_id: offer.subscriptionId,
      kind: offer.kind,
      terms: JSON.stringify(offer.terms),
      offered_at: new Date(offer.at),
      expires_at: new Date(offer.expiresAt),
    });
    await enqueueOutboxEvent(trx, {
      eventType: offer.kind === 'retention' ? 'retention.offered' : 'win_back.offered',
      aggregateType: 'subscription',
      aggregateId: offer.subscriptionId,
      dedupeKey: `${offer.kind}.offered:${offer.subscriptionId}:${offer.at}`,
      payload: { subscriptionId: offer.subscriptionId, terms: offer.terms, expiresAt: offer.expiresAt },
    });
    return { offered: true, expiresAt: offer.expiresAt };
  });
}

/** Records the answer to the subscription's open offer of that kind, with its audit record; only the first answer counts. */
export async function answerOpenOffer(db: Knex, answer: OfferAnswer): Promise<void> {
  await db.transaction(async (trx) => {
    const updated = await trx('customer_offers')
      .where({ subscription_id: answer.subscriptionId, kind: answer.kind })
      .whereNull('answer')
      .update({ answer: answer.answer, answered_at: new Date(answer.at) });
    if (updated === 0) return;
    await writeAudit(trx, {
      actor: answer.requestedBy,
      action: `${answer.kind}.${answer.answer}`,
      subjectType: 'subscription',
      subjectId: answer.subscriptionId,
    });
  });
}

/**
 * The retention discount (percent off) the period invoice opening at `invoicePeriodStart` will give its lines, or
 * null: what the figures shown before that invoice (the usage projection, the wallet's pending usage) take off the
 * usage it bills, so they say what the invoice will bill. The workflow keeps the discount in its state (percent off
 * the next `periods` period invoices from the acceptance); from the database it is the subscription's latest
 * accepted retention offer, less the period invoices written since. Every period invoice starting after the offer
 * was made was written after the answer (a period ending while an offer is open waits for it) and used one period,
 * discount line or not (void ones included: the workflow counted them when it wrote them). The one period invoice
 * that can start before the offer and still be written after the answer is the one whose period the offer was made
 * in, when it was made in the usage grace window after its start: it used one when it carries the discount. A
 * subscription cancelled at its period's end gets a closing invoice instead, which the workflow gives no discount,
 * and one won back after it was canceled restarts without the discount.
 */
export async function retentionDiscountOnPeriodInvoice(db: Knex, subscriptionId: string, invoicePeriodStart: Date): Promise<string | null> {
  // Cancelled at the period's end after all: no period invoice comes, and the closing invoice gives no discount.
  const subscription: { status: string } | undefined = await db('subscriptions').where({ id: subscriptionId }).first('status');
  if (!subscription || subscription.status === 'pending_cancellation' || subscription.status === 'canceled') return null;
  const offer: { offered_at: Date; terms: { percentOff?: unknown; periods?: unknown } } | undefined = await db('customer_offers')
    .where({ subscription_id: subscriptionId, kind: 'retention', answer: 'accepted' })
    .andWhere('offered_at', '<', invoicePeriodStart)
    .orderBy('offered_at', 'desc')
    .first('offered_at', 'terms');
  if (!offer || typeof offer.terms.percentOff !== 'string' || typeof offer.terms.periods !== 'number') return null;
  // The discount ends with the subscription it was given to: a win-back restart after it starts afresh without it
  // (the workflow restarts with no discount). Still counted here, the restart's usage was shown 30 % off where its
  // invoice billed it in full, and the wallet showed that much more available than its draw left.
  const restarted = await db('customer_offers')
    .where({ subscription_id: subscriptionId, kind: 'win_back', answer: 'accepted' })
    .andWhere('offered_at', '>', offer.offered_at)
    .first('id');
  if (restarted) return null;
  const [{ used }] = await db('invoices as i')
    .where({ 'i.subscription_id': subscriptionId, 'i.kind': 'period' })
    .andWhere('i.period_start', '<', invoicePeriodStart)
    .andWhere((written) =>
      written.where('i.period_start', '>', offer.offered_at).orWhere((opening) =>
        opening
          .where('i.period_start', '<=', offer.offered_at)
          .andWhere('i.period_end', '>', offer.offered_at)
          .whereExists(db('invoice_lines as l').whereRaw('l.invoice_id = i.id').andWhere('l.kind', 'discount').andWhereRaw("l.breakdown ->> 'percentOff' = ?", [offer.terms.percentOff as string]).select(db.raw('1'))),
      ),
    )
    .count({ used: '*' });
  return Number(used) < offer.terms.periods ? offer.terms.percentOff : null;
}

/**
 * The fee lines the period invoice opening at `invoicePeriodStart` bills in advance, built as that invoice builds them
 * (renewalInvoiceLines): the plan a change scheduled by then switches to (the workflow switches before it writes that
 * invoice), else the plan in force. None when the subscription ends there: its closing invoice bills no fee.
 */
export async function feeLinesOfPeriodInvoice(db: Knex, subscriptionId: string, invoicePeriodStart: Date): Promise<DraftInvoiceLine[]> {
  const row: { status: string; plan_id: string; scheduled_change_plan_id: string | null; scheduled_change_at: Date | null; current_period_start: Date | null } | undefined = await db('subscriptions')
    .where({ id: subscriptionId })
    .first('status', 'plan_id', 'scheduled_change_plan_id', 'scheduled_change_at', 'current_period_start');
  if (!row || row.status === 'pending_cancellation' || row.status === 'canceled') return [];
  // A record older than the period the row shows has lapsed (store/metered-overlaps.ts): the workflow no longer holds it.
  const at = row.scheduled_change_at;
  const scheduled = row.scheduled_change_plan_id && at && at <= invoicePeriodStart && !(row.current_period_start && row.current_period_start > at);
  const plan = await cachedPlan(db, scheduled ? row.scheduled_change_plan_id! : row.plan_id); // a plan version never changes
  const opening = invoicePeriodStart.toISOString(); // the lines' period is only a label here: a fee is not prorated
  return renewalInvoiceLines({ planName: plan.name, currency: plan.currency, flatFee: String(plan.flat_fee), charges: plan.charges as Charge[], flatFeePeriod: { start: opening, end: opening }, usage: null });
}

/** What the period invoice that bills a stretch's usage will take off, as figures shown before it need it. */
export interface PreviewedRetentionDiscount {
  readonly percentOff: string | null;
  /** The fee lines that invoice bills in advance (feeLinesOfPeriodInvoice); read here only when a discount runs. */
  readonly feeLines: readonly DraftInvoiceLine[];
  readonly discount: DraftInvoiceLine | null;
}

/**
 * The retention discount line of the period invoice opening at `span.end`, as that invoice computes it: ONE line over
 * its fee and the usage lines together, rounded once (activities/invoicing.ts, discountLine). Taken off the usage
 * alone, the usage page showed 9.99 + 0.03 where the invoice billed 9.99 + 0.05 - 3.01 (30 % off).
 */
export async function previewedRetentionDiscount(
  db: Knex,
  subscriptionId: string,
  usage: { readonly lines: readonly DraftInvoiceLine[]; readonly currency: string; readonly span: PeriodBounds },
  feeLinesRead?: readonly DraftInvoiceLine[],
): Promise<PreviewedRetentionDiscount> {
  const { lines: usageLines, currency, span } = usage;
  const percentOff = await retentionDiscountOnPeriodInvoice(db, subscriptionId, new Date(span.end));
  if (!percentOff) return { percentOff: null, feeLines: feeLinesRead ?? [], discount: null };
  const feeLines = feeLinesRead ?? (await feeLinesOfPeriodInvoice(db, subscriptionId, new Date(span.end)));
  return { percentOff, feeLines, discount: discountLine([...feeLines, ...usageLines], percentOff, currency, span) };
}
