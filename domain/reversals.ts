/**
 * Reversible outcomes (docs/pricing.md): an event may take back an earlier one of the same customer by id
 * (`reverses: "<event id>"`), within the dispute window of the customer's plan. Pure: the store supplies the
 * reversed event as found, the window and the reversal's own time.
 *
 * Once stored, a reversal makes its original stop counting: aggregation skips reversed events and reversals
 * alike, so a count loses the event and a percentage-of-value outcome loses its value (its amount, not just its
 * count).
 */
import { addIntervals, isValidInterval, parseInterval } from './periods';

export type ReversalRejection =
  | 'reversed_event_not_found'
  | 'reversed_event_of_another_customer'
  | 'event_already_reversed'
  | 'dispute_window_closed'
  | 'reversal_not_creditable';

/** The event a reversal names, as stored; undefined when no customer has an event with that id. */
export interface ReversalTarget {
  readonly customerId: string;
  readonly occurredAt: Date;
  /** Already taken back by an earlier reversal. */
  readonly reversed: boolean;
  /** The reversal names an event that is itself a reversal. */
  readonly isReversal: boolean;
  /**
   * Set when the original was already invoiced under a plan charging a metric that reads it as a max, latest or
   * unique_count: the closed usage holds a level or a count of distinct values, not which event made it, so no
   * credit can take this one event out (docs/pricing.md). Such a reversal is refused rather than silently uncredited.
   */
  readonly invoicedUnder?: { readonly metricCode: string };
  /**
   * The dispute window of the plan that bills the original (null: that plan accepts no reversals): its usage close's
   * plan once invoiced, else the plan of the subscription pricing its type at its time. Absent when no plan prices it:
   * the customer's plan (`judgeReversal`'s `disputeWindow`) judges it then. The outcome was sold under that plan's
   * terms: judged by another subscription's plan, a customer with two subscriptions (or a new one after the first
   * ended) was refused reversals their plan granted, or credited outcomes sold without any.
   */
  readonly disputeWindow?: string | null;
}

export interface ReversalRequest {
  readonly customerId: string;
  /** The reversal's own timestamp. */
  readonly occurredAt: Date;
  readonly reversesEventId: string;
}

export type ReversalVerdict = { readonly ok: true } | { readonly ok: false; readonly code: ReversalRejection; readonly detail: string };

/**
 * Whether a reversal may take its original back. `targets` holds every stored event with the named id (several
 * customers may use one id); `disputeWindow` is the customer's plan's ISO-8601 duration, counted from the original's
 * time, or null when the plan accepts no reversals: used only when the target carries none of its own (no plan
 * prices the original).
 */
export function judgeReversal(request: ReversalRequest, targets: readonly ReversalTarget[], disputeWindow: string | null): ReversalVerdict {
  const own = targets.find((target) => target.customerId === request.customerId);
  if (!own) {
    return targets.length > 0
      ? { ok: false, code: 'reversed_event_of_another_customer', detail: `event ${request.reversesEventId} belongs to another customer` }
      : { ok: false, code: 'reversed_event_not_found', detail: `no event ${request.reversesEventId} to reverse` };
  }
  if (own.isReversal) return { ok: false, code: 'reversed_event_not_found', detail: `event ${request.reversesEventId} is itself a reversal` };
  if (own.reversed) return { ok: false, code: 'event_already_reversed', detail: `event ${request.reversesEventId} was already reversed` };
  const window = own.disputeWindow === undefined ? disputeWindow : own.disputeWindow;
  if (window === null || !isValidInterval(window)) {
    return { ok: false, code: 'dispute_window_closed', detail: `the plan that bills event ${request.reversesEventId} accepts no reversals (no dispute_window)` };
  }
  const closesAt = addIntervals(own.occurredAt, parseInterval(window), 1);
  if (request.occurredAt.getTime() >= closesAt.getTime()) {
    return { ok: false, code: 'dispute_window_closed', detail: `the dispute window (${window}) of event ${request.reversesEventId} closed at ${closesAt.toISOString()}` };
  }
  if (own.invoicedUnder) {
    return {
      ok: false,
      code: 'reversal_not_creditable',
      detail: `event ${request.reversesEventId} was invoiced under metric ${own.invoicedUnder.metricCode}, whose max, latest or unique_count cannot be credited event by event`,
    };
  }
  return { ok: true };
}
