/**
 * The reference model of the lifecycle simulation: a PURE function from one subscription's operation log (what
 * was sent, when, and what the API answered) to what billing must have produced: every invoice with its lines
 * and total, the usage stretch each accepted event belongs to (or that it is late), and when the subscription
 * must have ended.
 *
 * It decides on its own WHICH events fall into WHICH stretch and invoice, when boundaries move (pauses), what an
 * immediate plan change prorates and when dunning holds a boundary back. Only the prices come from domain/ (the
 * same rating, fee and proration functions billing uses), so a rounding rule lives in one place.
 *
 *   start ---------------- B1 --grace-- ............. B2 --grace-- ...
 *   period 0 invoice:      | period 1 invoice at B1 + grace: plan's fee for [B1, B2) + usage of [start, B1)
 *   fee of [start, B1)     | an event with timestamp < B1 sent before B1 + grace counts in [start, B1); after, it is late
 */
import { DraftInvoiceLine, invoiceTotal, renewalInvoiceLines } from '../../domain/invoice';
import { Dec } from '../../domain/money';
import { addIntervals, parseInterval } from '../../domain/periods';
import { planChangeProrationLines } from '../../domain/proration';
import type { UsageForCharge } from '../../domain/rating';
import type { PeriodShare } from '../../domain/allowances';
import { SIM_CURRENCY, SIM_GRACE_MS, SIM_INTERVAL, SimPlan, simPlan } from './scenario-catalog';
import { declinesBeforeSuccess, DUNNING_DELAYS_MS, SimEvent } from './scenario-generator';

/** One request as it happened: the instant it was sent (server time), and the answer. */
export type ObservedOperation = { readonly sentAt: Date; /** The problem code of a rejection. */ readonly code?: string } & (
  | { readonly kind: 'event'; readonly event: SimEvent; readonly outcome: 'accepted' | 'duplicate' | 'rejected'; readonly code?: string }
  | { readonly kind: 'plan_change'; readonly planCode: string; readonly effective: 'immediate' | 'period_end'; readonly outcome: Answer; readonly effectiveAt?: Date }
  | { readonly kind: 'cancel'; readonly when: 'now' | 'period_end'; readonly outcome: Answer; readonly effectiveAt?: Date; readonly final?: boolean }
  /** `at`: when the subscription says it paused (its timeline), for an accepted pause. */
  | { readonly kind: 'pause'; readonly outcome: Answer; readonly at?: Date }
  /** `at`: when the subscription says it resumed (its timeline), for an accepted resume. */
  | { readonly kind: 'resume'; readonly outcome: Answer; readonly at?: Date }
);
export type Answer = 'accepted' | 'rejected';

export interface ReferenceSubscription {
  readonly startAt: Date;
  readonly planCode: string;
  readonly paymentMethod: string;
  /** In the order the requests were made. */
  readonly log: readonly ObservedOperation[];
  /** The instant the outcome is looked at: boundaries up to then have happened. */
  readonly until: Date;
}

export interface ExpectedInvoice {
  readonly kind: 'period' | 'closing' | 'proration';
  /** The invoice's identity with kind: the fee period's start, the closing usage's start, or the change instant. */
  readonly periodStart: string;
  readonly lines: readonly DraftInvoiceLine[];
  readonly total: string;
  /** When billing must have written it at the latest (before dunning and worker delays). */
  readonly dueAt: Date;
  /** The usage stretch it bills, if any (its start identifies the usage closure). */
  readonly usageStart: string | null;
}

export type EventExpectation =
  | { readonly billed: true; readonly stretchStart: string; readonly invoiceKey: string }
  | { readonly billed: false; readonly late: true };

export interface ReferenceResult {
  readonly invoices: readonly ExpectedInvoice[];
  /** Every accepted event id (first accepted send). */
  readonly events: ReadonlyMap<string, EventExpectation>;
  /** When the subscription must show as canceled (Postgres canceled_at), or null if it never ends. */
  readonly endedAt: Date | null;
  readonly finalPlanCode: string;
}

const MONTH = parseInterval(SIM_INTERVAL);

export const invoiceKey = (kind: string, periodStart: string): string => `${kind}@${periodStart}`;

interface Stretch {
  readonly start: Date;
  readonly end: Date;
  readonly planCode: string;
  /** Closed by a request (events before that log position count) or by a timer (events sent before that instant count). */
  readonly closedBy: { readonly position: number } | { readonly at: Date };
  readonly invoiceKey: string;
  /**
   * Its part of the billing period's allowances (the credit bucket): the fractions of the period left at its start
   * and at its end, not the whole period when an immediate plan change cut it.
   */
  readonly share: PeriodShare;
}

interface AcceptedEvent {
  readonly event: SimEvent;
  readonly sentAt: Date;
  readonly position: number;
}

interface PendingInvoice {
  readonly kind: ExpectedInvoice['kind'];
  readonly periodStart: Date;
  readonly dueAt: Date;
  readonly fee: { readonly plan: SimPlan; readonly start: Date; readonly end: Date } | null;
  readonly proration: { readonly from: SimPlan; readonly to: SimPlan; readonly start: Date; readonly end: Date } | null;
  readonly stretch: Stretch | null;
}

export function referenceBilling(subscription: ReferenceSubscription): ReferenceResult {
  const accepted: AcceptedEvent[] = [];
  const seen = new Set<string>();
  subscription.log.forEach((entry, position) => {
    if (entry.kind === 'event' && entry.outcome === 'accepted' && !seen.has(entry.event.id)) {
      seen.add(entry.event.id);
      accepted.push({ event: entry.event, sentAt: entry.sentAt, position });
    }
  });

  const invoices: PendingInvoice[] = [];
  const stretches: Stretch[] = [];
  // The calendar: period `anchorIndex` starts at `anchor`, the ones after it monthly from there; the one before it
  // is the period a resume moved (from `movedStart` to the anchor, its moved end).
  let anchor = subscription.startAt;
  let anchorIndex = 0;
  let movedStart = subscription.startAt;
  let index = 0;
  let plan = simPlan(subscription.planCode);
  let openSince = subscription.startAt;
  let scheduled: SimPlan | null = null;
  let pendingCancel = false;
  let pausedAt: Date | null = null;
  let endedAt: Date | null = null;
  /** Dunning holds the period loop until the unpaid invoice is paid. */
  let heldUntil = 0;
  /** When the period step last finished (a cancellation waits for it). */
  let busyUntil = subscription.startAt.getTime();
  const declines = declinesBeforeSuccess(subscription.paymentMethod);

  const periodStart = (k: number): Date => (k < anchorIndex ? movedStart : addIntervals(anchor, MONTH, k - anchorIndex));
  const usageOf = (stretch: Stretch): UsageForCharge[] => totalsOf(eventsIn(stretch, accepted));
  const issue = (invoice: PendingInvoice): void => {
    invoices.push(invoice);
    if (declines > 0 && new Dec(totalOf(invoice, usageOf)).gt(0)) {
      heldUntil = invoice.dueAt.getTime() + DUNNING_DELAYS_MS.slice(0, declines).reduce((sum, ms) => sum + ms, 0);
    }
  };
  let currentUsagePlan = plan;
  /** The billing period an immediate plan change split, while the open stretch is the one that change started. */
  let splitPeriod: { start: Date; end: Date } | null = null;
  /** The share of a stretch that is not ended by a change (it counts to its period's end). */
  const shareToPeriodEnd = (): PeriodShare => shareOf(splitPeriod, openSince, null);

  issue({ kind: 'period', periodStart: subscription.startAt, dueAt: subscription.startAt, fee: { plan, start: periodStart(0), end: periodStart(1) }, proration: null, stretch: null });

  /** Runs the period loop up to `until`: boundaries (held back by dunning), a period-end cancellation. */
  const advance = (until: Date): void => {
    while (!endedAt && !pausedAt) {
      const boundary = periodStart(index + 1);
      const fireAt = Math.max(boundary.getTime(), heldUntil);
      if (fireAt > until.getTime()) return;
      const closesAt = new Date(Math.max(boundary.getTime() + SIM_GRACE_MS, fireAt));
      if (pendingCancel) {
        const stretch: Stretch = { start: openSince, end: boundary, planCode: currentUsagePlan.code, closedBy: { at: closesAt }, invoiceKey: invoiceKey('closing', openSince.toISOString()), share: shareToPeriodEnd() };
        stretches.push(stretch);
        issue({ kind: 'closing', periodStart: openSince, dueAt: closesAt, fee: null, proration: null, stretch });
        endedAt = closesAt;
        return;
      }
      index += 1;
      if (scheduled) plan = scheduled; // the renewal applies the scheduled change; the closed usage keeps its plan
      scheduled = null;
      const stretch: Stretch = { start: openSince, end: boundary, planCode: currentUsagePlan.code, closedBy: { at: closesAt }, invoiceKey: invoiceKey('period', boundary.toISOString()), share: shareToPeriodEnd() };
      stretches.push(stretch);
      issue({ kind: 'period', periodStart: boundary, dueAt: closesAt, fee: { plan, start: boundary, end: periodStart(index + 1) }, proration: null, stretch });
      busyUntil = closesAt.getTime();
      openSince = boundary;
      splitPeriod = null;
      currentUsagePlan = plan;
    }
  };

  subscription.log.forEach((entry, position) => {
    if (entry.kind === 'event' || entry.outcome !== 'accepted' || endedAt) return;
    if (entry.kind === 'pause') {
      const at = entry.at ?? entry.sentAt;
      advance(at);
      pausedAt = at;
    } else if (entry.kind === 'resume') {
      if (!pausedAt) return;
      const at = entry.at ?? entry.sentAt;
      // Paused time is given back: this period moves by exactly that time, and the calendar restarts at its moved end.
      const pausedMs = at.getTime() - pausedAt.getTime();
      const movedEnd = new Date(periodStart(index + 1).getTime() + pausedMs);
      movedStart = new Date(periodStart(index).getTime() + pausedMs);
      anchor = movedEnd;
      anchorIndex = index + 1;
      pausedAt = null;
      advance(at);
    } else if (entry.kind === 'cancel') {
      advance(entry.sentAt);
      if (endedAt) return;
      if (entry.when === 'period_end' && !pausedAt) {
        pendingCancel = true;
        return;
      }
      // Now, or at the period end it answered while paused (the paused run has no boundary of its own to wait for).
      const at = entry.effectiveAt ?? entry.sentAt;
      // Its usage stretch ends at the cancellation and waits out its own grace window from there; a loop still busy
      // with the closed period's (accepted in that period's grace window) closes it when it gets to it.
      const closesAt = new Date(Math.max(at.getTime() + SIM_GRACE_MS, busyUntil));
      const stretch: Stretch = { start: openSince, end: at, planCode: currentUsagePlan.code, closedBy: { at: closesAt }, invoiceKey: invoiceKey('closing', openSince.toISOString()), share: shareToPeriodEnd() };
      stretches.push(stretch);
      invoices.push({ kind: 'closing', periodStart: openSince, dueAt: closesAt, fee: null, proration: null, stretch });
      endedAt = closesAt;
    } else if (entry.kind === 'plan_change') {
      const at = entry.effective === 'immediate' ? (entry.effectiveAt ?? entry.sentAt) : entry.sentAt;
      advance(at);
      const next = simPlan(entry.planCode);
      if (entry.effective === 'period_end') {
        scheduled = next;
        return;
      }
      const period = { start: periodStart(index), end: periodStart(index + 1) };
      const share = shareOf(splitPeriod, openSince, { period, at });
      const stretch: Stretch = { start: openSince, end: at, planCode: plan.code, closedBy: { position }, invoiceKey: invoiceKey('proration', at.toISOString()), share };
      stretches.push(stretch);
      issue({ kind: 'proration', periodStart: at, dueAt: at, fee: null, proration: { from: plan, to: next, start: period.start, end: period.end }, stretch });
      plan = next;
      currentUsagePlan = next;
      openSince = at;
      splitPeriod = period;
      scheduled = null;
    }
  });

  advance(subscription.until);

  const events = new Map<string, EventExpectation>();
  for (const accepted_ of accepted) {
    const ts = new Date(accepted_.event.timestamp).getTime();
    const stretch = stretches.find((candidate) => ts >= candidate.start.getTime() && ts < candidate.end.getTime());
    if (stretch && countsIn(stretch, accepted_)) events.set(accepted_.event.id, { billed: true, stretchStart: stretch.start.toISOString(), invoiceKey: stretch.invoiceKey });
    else events.set(accepted_.event.id, { billed: false, late: true });
  }

  return {
    invoices: invoices.map((invoice) => {
      const lines = linesOf(invoice, usageOf);
      return {
        kind: invoice.kind,
        periodStart: invoice.periodStart.toISOString(),
        lines,
        total: invoiceTotal(lines, SIM_CURRENCY),
        dueAt: invoice.dueAt,
        usageStart: invoice.stretch ? invoice.stretch.start.toISOString() : null,
      };
    }),
    events,
    endedAt,
    finalPlanCode: plan.code,
  };
}

/** Whether an event is in a stretch's closure: sent before the closing request, or before the closing timer. */
function countsIn(stretch: Stretch, event: AcceptedEvent): boolean {
  return 'position' in stretch.closedBy ? event.position < stretch.closedBy.position : event.sentAt.getTime() < stretch.closedBy.at.getTime();
}

function eventsIn(stretch: Stretch, accepted: readonly AcceptedEvent[]): AcceptedEvent[] {
  return accepted.filter((event) => {
    const ts = new Date(event.event.timestamp).getTime();
    return ts >= stretch.start.getTime() && ts < stretch.end.getTime() && countsIn(stretch, event);
  });
}

/** The metrics' aggregations, done here: tokens are summed, requests counted. */
function totalsOf(events: readonly AcceptedEvent[]): UsageForCharge[] {
  const tokens = events.reduce((sum, { event }) => sum.plus(new Dec(String(event.tokens))), new Dec(0));
  return [
    { metricCode: 'sim_tokens', quantity: tokens.toString() },
    { metricCode: 'sim_requests', quantity: String(events.length) },
  ];
}

function usageLines(plan: SimPlan, stretch: Stretch, totals: UsageForCharge[]): DraftInvoiceLine[] {
  // The stretch's part of the bucket, per end: what the bucket is at the fraction left at its start, to the cent,
  // half up, less the same at its end; so one plan's stretches of a period add up to its whole bucket.
  const cents = (fraction: string): Dec => new Dec(plan.creditBucket!).times(fraction).toDecimalPlaces(2, Dec.ROUND_HALF_UP);
  const creditBucket = plan.creditBucket === undefined ? undefined : Dec.max(cents(stretch.share.leftAtStart).minus(cents(stretch.share.leftAtEnd)), 0).toFixed(2);
  const whole = new Dec(stretch.share.leftAtStart).gte(1) && new Dec(stretch.share.leftAtEnd).lte(0);
  return renewalInvoiceLines({
    planName: plan.name,
    currency: SIM_CURRENCY,
    flatFee: '0',
    charges: plan.charges,
    flatFeePeriod: null,
    usage: { period: { start: stretch.start.toISOString(), end: stretch.end.toISOString() }, totals },
    creditBucket,
    // And of each charge's included units (and min/max amounts), which rating cuts by the same share.
    ...(whole ? {} : { periodShare: stretch.share }),
  });
}

/**
 * A stretch's part of its billing period, by its two ends: the fraction of the period left where it starts (all of
 * it, unless an immediate plan change started it: then measured in the period that change split) and where it ends
 * (nothing, unless a change ends it: then measured in the period of that change).
 */
function shareOf(startedIn: { start: Date; end: Date } | null, openSince: Date, endedBy: { period: { start: Date; end: Date }; at: Date } | null): PeriodShare {
  const left = (period: { start: Date; end: Date }, at: Date): Dec => {
    const length = period.end.getTime() - period.start.getTime();
    const from = Math.min(Math.max(at.getTime(), period.start.getTime()), period.end.getTime());
    return new Dec(period.end.getTime() - from).div(length);
  };
  const leftAtStart = startedIn ? left(startedIn, openSince) : new Dec(1);
  const leftAtEnd = endedBy ? left(endedBy.period, endedBy.at) : new Dec(0);
  return { fraction: Dec.max(leftAtStart.minus(leftAtEnd), 0).toString(), leftAtStart: leftAtStart.toString(), leftAtEnd: leftAtEnd.toString() };
}

function linesOf(invoice: PendingInvoice, usageOf: (stretch: Stretch) => UsageForCharge[]): DraftInvoiceLine[] {
  const lines: DraftInvoiceLine[] = [];
  if (invoice.fee) {
    const { plan, start, end } = invoice.fee;
    lines.push(...renewalInvoiceLines({ planName: plan.name, currency: SIM_CURRENCY, flatFee: new Dec(plan.flatFee).toString(), charges: plan.charges, flatFeePeriod: { start: start.toISOString(), end: end.toISOString() }, usage: null }));
  }
  if (invoice.proration) {
    const { from, to, start, end } = invoice.proration;
    lines.push(
      ...planChangeProrationLines({
        currency: SIM_CURRENCY,
        period: { start: start.toISOString(), end: end.toISOString() },
        changeAt: invoice.periodStart,
        oldPlan: { name: from.name, recurringFee: new Dec(from.flatFee).toString() },
        newPlan: { name: to.name, recurringFee: new Dec(to.flatFee).toString() },
      }),
    );
  }
  if (invoice.stretch) lines.push(...usageLines(simPlan(invoice.stretch.planCode), invoice.stretch, usageOf(invoice.stretch)));
  return lines;
}

function totalOf(invoice: PendingInvoice, usageOf: (stretch: Stretch) => UsageForCharge[]): string {
  return invoiceTotal(linesOf(invoice, usageOf), SIM_CURRENCY);
}
