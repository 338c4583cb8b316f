import type { Client } from '@temporalio/client';
import type { Database } from '../store/database';
import { billingSubscriptionsOf } from '../store/subscriptions';
import { usageRecordedSignal } from '../workflows/definitions';

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
}

/**
 * Usage never reaches a workflow event by event. Ingestion records accepted counts here after commit; this
 * coalescer sends each subscription's workflow one summary signal per window. A signal that fails is kept
 * pending and retried on the next flush; usage itself is already safe in Postgres.
 */
export class UsageSignalCoalescer {
  private readonly pending = new Map<string, PendingSummary>();
  private readonly lastSignalAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private readonly flushIntervalMs: number;
  private readonly signalsPerPeriod: number;
  private readonly floorMs: number;

  constructor(
    private readonly db: Database,
    private readonly temporal: Client,
    options: UsageSignalOptions = {},
  ) {
    this.flushIntervalMs = options.flushIntervalMs ?? 1_000;
    this.signalsPerPeriod = options.signalsPerPeriod ?? 2;
    this.floorMs = options.floorMs ?? 5_000;
  }

  record(customerId: string, eventCount: number, latestEventAt: Date): void {
    const current = this.pending.get(customerId);
    this.pending.set(customerId, {
      eventCount: (current?.eventCount ?? 0) + eventCount,
      latestEventAt: current && current.latestEventAt > latestEventAt ? current.latestEventAt : latestEventAt,
    });
  }

  start(): void {
    this.timer ??= setInterval(() => {
      void this.flush();
    }, this.flushIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and sends what is due (an API shutting down should not drop summaries it can send). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  flush(): Promise<void> {
    this.flushing ??= this.flushDue().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushDue(): Promise<void> {
    if (this.pending.size === 0) return;
    const customerIds = [...this.pending.keys()];
    const subscriptions = await billingSubscriptionsOf(this.db, customerIds);
    const now = Date.now();
    const stillPending = new Set<string>();
    for (const subscription of subscriptions) {
      const summary = this.pending.get(subscription.customer_id)!;
      const periodMs =
        subscription.current_period_start && subscription.current_period_end
          ? subscription.current_period_end.getTime() - subscription.current_period_start.getTime()
          : 0;
      const windowMs = Math.max(this.floorMs, periodMs / this.signalsPerPeriod);
      if (now - (this.lastSignalAt.get(subscription.id) ?? 0) < windowMs) {
        stillPending.add(subscription.customer_id);
        continue;
      }
      try {
        await this.temporal.workflow.getHandle(subscription.workflow_id).signal(usageRecordedSignal, {
          eventCount: summary.eventCount,
          latestEventAt: summary.latestEventAt.toISOString(),
        });
        this.lastSignalAt.set(subscription.id, now);
      } catch {
        stillPending.add(subscription.customer_id); // e.g. Temporal briefly unreachable: try again next flush
      }
    }
    for (const customerId of customerIds) if (!stillPending.has(customerId)) this.pending.delete(customerId);
  }
}
