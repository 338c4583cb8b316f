/**
 * Spending limits at the API: which subscriptions need their workflow's spending check now, ahead of the usage
 * summary window (./usage-signals.ts). Summaries go out at most twice a period per subscription (the history
 * budget), and the check (budget and credit alerts, the plan's hard cap) ran only on them: a budget crossed the
 * day after the first summary was told half a month later, and usage past a hard cap was accepted until then.
 *
 * The measure is the check's own (store/spending-limits.ts), read from the running totals; a subscription is due
 * when it crossed a threshold not raised yet against the same limit, or reached its hard cap uncapped. Only for
 * subscriptions with a limit, and only for customers with usage since their last look (the coalescer says which).
 */
import type { Database } from '../store/database';
import { latestStretchStart } from '../store/plan-changes';
import { measureSpending, pendingSpendingActions, subscriptionsWithSpendingLimits } from '../store/spending-limits';
import { loadSubscriptionContext } from '../store/subscriptions';

export interface HeldSubscription {
  readonly id: string;
  readonly current_period_start: Date | null;
  readonly current_period_end: Date | null;
}

export class SpendingCheckSignals {
  /**
   * Subscription id -> what it was last found due for: until its check has recorded that (a moment later), more
   * usage finds the same actions pending, and a summary per flush would follow. Each set of actions is sent once.
   */
  private readonly sentFor = new Map<string, string>();

  constructor(private readonly db: Database) {}

  /** The ids of the subscriptions whose spending check would raise or cap something not asked for yet. */
  async due(subscriptions: readonly HeldSubscription[], now: Date): Promise<Set<string>> {
    const due = new Set<string>();
    const limited = await subscriptionsWithSpendingLimits(this.db, subscriptions.map((subscription) => subscription.id));
    for (const subscription of subscriptions) {
      if (!limited.has(subscription.id) || !subscription.current_period_start || !subscription.current_period_end) continue;
      const context = await loadSubscriptionContext(this.db, subscription.id);
      if (!context) continue;
      // The stretch the workflow's check measures: from the last immediate plan change, to the period's end.
      const from = await latestStretchStart(this.db, subscription.id, subscription.current_period_start);
      const measure = await measureSpending(this.db, context, from, subscription.current_period_end);
      const actions = (await pendingSpendingActions(this.db, context, measure, now)).join(' ');
      if (actions === '' || this.sentFor.get(subscription.id) === actions) continue;
      this.sentFor.set(subscription.id, actions);
      due.add(subscription.id);
    }
    return due;
  }

  /** The summary asked for could not be sent: what it was due for is asked for again. */
  forget(subscriptionId: string): void {
    this.sentFor.delete(subscriptionId);
  }
}
