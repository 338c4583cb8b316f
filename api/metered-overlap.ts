/**
 * The API's side of "one customer's usage of an event type is billed by at most one subscription at any instant"
 * (store/metered-overlaps.ts): the refusal as a problem that names the other subscription and the shared event types.
 */
import type { Knex } from 'knex';
import { describeMeteredOverlap, lockCustomersForMeteredCheck, MeteredCandidate, MeteredOverlap, meteredOverlapsOf } from '../store/metered-overlaps';
import { ApiProblem } from './problem';

/** 409 metered_usage_overlap, with the other subscription and the event types both would price. */
export function meteredOverlapProblem(overlap: MeteredOverlap): ApiProblem {
  return new ApiProblem('metered_usage_overlap', describeMeteredOverlap(overlap), undefined, {
    conflicting_subscription_id: overlap.subscriptionId,
    event_types: overlap.eventTypes,
  });
}

/**
 * Locks the customer for the rest of the transaction and refuses the candidate stretch when another subscription
 * of the customer prices one of its event types there. The caller writes in the same transaction, so a racing
 * request of the same customer checks after that write commits (or rolls back).
 */
export async function refuseMeteredOverlap(trx: Knex.Transaction, candidate: MeteredCandidate): Promise<void> {
  await lockCustomersForMeteredCheck(trx, [candidate.customerId]);
  const [overlap] = await meteredOverlapsOf(trx, candidate);
  if (overlap) throw meteredOverlapProblem(overlap);
}
