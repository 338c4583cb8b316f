import type { Client } from '@temporalio/client';
import type { Database } from '../store/database';
import { billingSubscriptionsOf } from '../store/subscriptions';
import { usageRecordedSignal } from '../workflows/definitions';
import { createLogger, entryLogger, LogSink } from '../logging/logger';
import { withTemporalDeadline } from './temporal-deadline';
import { SpendingCheckSignals } from './spending-signals';
import { UsageThresholdSignals } from './usage-thresholds';

interface PendingSummary {
  eventCount: number;
  latestEventAt: Date;
}

export interface UsageSignalOptions {
  /** How often pending summaries are looked at. */
  readonly flushIntervalMs?: number;
  /**
   * At most this many signals per subscription per billing period (and never more than one per `floorMs`):
   * the bound that keeps a workflow's history near its budget however many events arrive.
   */
  readonly signalsPerPeriod?: number;
  readonly floorMs?: number;
  /** Where a failing flush is reported (once per outage, and once when it recovers); the process's pino logger by default. */
  readonly log?: UsageSignalLog;
  /** Progressive billing's threshold check after ingestion (./usage-thresholds.ts); null turns it off. */
  readonly thresholds?: UsageThresholdSignals | null;
  /** Sends a summary ahead of its window when the spending check has something to raise (./spending-signals.ts); null turns it off. */
  readonly spending?: SpendingCheckSignals | null;
}

/** One `{ level, msg, ...fields }` object per line (`entryLogger` adapts a pino logger to it). */
export type UsageSignalLog = LogSink;

/**
 * Usage never reaches a workflow event by event. Ingestion records accepted counts here after commit; this
 * coalescer sends each subscription's workflow one summary signal per window. A signal that fails is kept
 * pending and retried on the next flush; usage itself is already safe in Postgres.
 *
 * The timer's flush never throws into the event loop (an unhandled rejection would end the API process): a flush
 * that fails (Postgres or Temporal down) keeps every pending summary, is logged once per outage, and is tried
 * again on the next tick.
 */
export class UsageSignalCoalescer {
  private readonly pending = new Map<string, PendingSummary>();
  private readonly lastSignalAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private readonly flushIntervalMs: number;
  private readonly signalsPerPeriod: number;
  private readonly floorMs: number;
  private readonly log: UsageSignalLog;
  /** Set while flushes keep failing: the first failure is logged, the rest are counted until one succeeds. */
  private failing: { since: number; failures: number } | undefined;
  private readonly thresholds: UsageThresholdSignals | null;
  /** Customers with usage recorded since their last threshold check -> their latest event time. */
  private readonly thresholdChecksDue = new Map<string, Date>();
  private readonly spending: SpendingCheckSignals | null;
  /** Customers with usage recorded since their spending limits were last looked at. */
  private readonly spendingChecksDue = new Set<string>();

  constructor(
    private readonly db: Database,
    private readonly temporal: Client,
    options: UsageSignalOptions = {},
  ) {
    this.flushIntervalMs = options.flushIntervalMs ?? 1_000;
    this.signalsPerPeriod = options.signalsPerPeriod ?? 2;
    this.floorMs = options.floorMs ?? 5_000;
    this.log = options.log ?? entryLogger(createLogger('api').child({ component: 'usage-signals' }));
    this.thresholds = options.thresholds === undefined ? new UsageThresholdSignals(db, temporal) : options.thresholds;
    this.spending = options.spending === undefined ? new SpendingCheckSignals(db) : options.spending;
  }

  record(customerId: string, eventCount: number, latestEventAt: Date): void {
    const current = this.pending.get(customerId);
    this.pending.set(customerId, {
      eventCount: (current?.eventCount ?? 0) + eventCount,
      latestEventAt: current && current.latestEventAt > latestEventAt ? current.latestEventAt : latestEventAt,
    });
    const due = this.thresholdChecksDue.get(customerId);
    if (this.thresholds && (!due || latestEventAt > due)) this.thresholdChecksDue.set(customerId, latestEventAt);
    if (this.spending) this.spendingChecksDue.add(customerId);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      void this.flushAndReport();
    }, this.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and sends what is due (an API shutting down should not drop summaries it can send). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flushAndReport();
  }

  /** A flush for the timer and for stop(): never rejects; failures are reported and the summaries stay pending. */
  private async flushAndReport(): Promise<void> {
    try {
      await this.flush();
    } catch (error) {
      this.reportFailure(error);
    }
  }

  private reportFailure(error: unknown): void {
    if (this.failing) {
      this.failing.failures += 1;
      return;
    }
    this.failing = { since: Date.now(), failures: 1 };
    this.log({
      level: 'error',
      msg: 'usage signal flush failed; summaries kept, retrying every tick (logged once until it recovers)',
      pending_customers: this.pending.size,
      error: String((error as Error)?.message ?? error),
    });
  }

  private reportSuccess(): void {
    if (!this.failing) return;
    this.log({ level: 'info', msg: 'usage signal flush recovered', failed_flushes: this.failing.failures, outage_ms: Date.now() - this.failing.since });
    this.failing = undefined;
  }

  flush(): Promise<void> {
    this.flushing ??= this.flushDue().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushDue(): Promise<void> {
    // A failed threshold check is reported and tried again next tick; the summaries below still go out.
    await this.checkThresholds().catch((error: unknown) => this.reportFailure(error));
    if (this.pending.size === 0) {
      this.reportSuccess();
      return;
    }
    const customerIds = [...this.pending.keys()];
    const subscriptions = await billingSubscriptionsOf(this.db, customerIds);
    const now = Date.now();
    const stillPending = new Set<string>();
    let signalFailure: unknown;
    const inWindow = (subscription: (typeof subscriptions)[number]): boolean => {
      const periodMs =
        subscription.current_period_start && subscription.current_period_end
          ? subscription.current_period_end.getTime() - subscription.current_period_start.getTime()
          : 0;
      return now - (this.lastSignalAt.get(subscription.id) ?? 0) < Math.max(this.floorMs, periodMs / this.signalsPerPeriod);
    };
    const urgent = await this.spendingChecksAhead(subscriptions.filter(inWindow));
    for (const subscription of subscriptions) {
      const summary = this.pending.get(subscription.customer_id)!;
      // Held back by its window, unless its spending check has an alert to raise or a cap to set now.
      if (inWindow(subscription) && !urgent.has(subscription.id)) {
        stillPending.add(subscription.customer_id);
        continue;
      }
      try {
        await withTemporalDeadline(this.temporal, () =>
          this.temporal.workflow.getHandle(subscription.workflow_id).signal(usageRecordedSignal, {
            eventCount: summary.eventCount,
            latestEventAt: summary.latestEventAt.toISOString(),
          }),
        );
        this.lastSignalAt.set(subscription.id, now);
      } catch (error) {
        stillPending.add(subscription.customer_id); // e.g. Temporal briefly unreachable: try again next flush
        if (urgent.has(subscription.id)) {
          // Sent ahead of its window, and not sent: look at its limits again next flush.
          this.spending?.forget(subscription.id);
          this.spendingChecksDue.add(subscription.customer_id);
        }
        signalFailure ??= error;
      }
    }
    for (const customerId of customerIds) if (!stillPending.has(customerId)) this.pending.delete(customerId);
    if (signalFailure !== undefined) this.reportFailure(signalFailure);
    else this.reportSuccess();
  }

  /**
   * Of the subscriptions the window holds back, those whose spending check has something to do now (only for
   * customers with usage since their last look). A failed look is reported and tried again on the next flush.
   */
  private async spendingChecksAhead(held: readonly { id: string; customer_id: string; current_period_start: Date | null; current_period_end: Date | null }[]): Promise<Set<string>> {
    const looked = held.filter((subscription) => this.spendingChecksDue.has(subscription.customer_id));
    if (!this.spending || looked.length === 0) return new Set();
    try {
      const due = await this.spending.due(looked, new Date());
      for (const subscription of looked) this.spendingChecksDue.delete(subscription.customer_id);
      return due;
    } catch (error) {
      this.reportFailure(error);
      return new Set();
    }
  }

  /**
   * Threshold signals are not held to the summary window (a threshold invoice is due when it is crossed), but are
   * checked once per customer per batch of new usage. A failed check keeps the customers due.
   */
  private async checkThresholds(): Promise<void> {
    if (!this.thresholds || this.thresholdChecksDue.size === 0) return;
    const due = new Map(this.thresholdChecksDue);
    this.thresholdChecksDue.clear();
    const latest = Math.max(...[...due.values()].map((at) => at.getTime()));
    try {
      // Up to the newest event recorded (inclusive) or now, whichever is later: every committed event counts.
      await this.thresholds.check([...due.keys()], new Date(Math.max(Date.now(), latest + 1)));
    } catch (error) {
      for (const [customerId, at] of due) if (!this.thresholdChecksDue.has(customerId)) this.thresholdChecksDue.set(customerId, at);
      throw error;
    }
  }
}
