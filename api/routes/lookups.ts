import type { Database } from '../../store/database';
import { findSubscription, SubscriptionRow, subscriptionBelongsTo } from '../../store/subscriptions';
import { ApiProblem } from '../problem';
import type { CustomerScope } from '../route-declarations';
import { uuidParam } from '../schemas';

/** The subscription a route's `:id` names; a malformed or unknown id is the same 404 `subscription_not_found`. */
export async function findSubscriptionOr404(db: Database, id: string): Promise<SubscriptionRow> {
  const parsed = uuidParam.safeParse(id);
  const row = parsed.success ? await findSubscription(db, parsed.data) : undefined;
  if (!row) throw new ApiProblem('subscription_not_found', `no subscription ${id}`);
  return row;
}

/** Customer scope of `/:id` subscription routes: `:id` is a subscription of the token's customer. */
export function ownSubscription(db: Database): CustomerScope {
  return async (params, customerId) => {
    const id = uuidParam.safeParse(params.id);
    return id.success && (await subscriptionBelongsTo(db, id.data, customerId));
  };
}
