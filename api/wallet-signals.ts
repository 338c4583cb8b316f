/**
 * The API's side of the wallet workflow (docs/wallets.md):
 *
 * - wakeWalletWorkflow: signalWithStart of `wallet:<customerId>`: starts the customer's wallet workflow if it is
 *   not running, else signals it to look again (a top-up, a recharge, a new grant, new settings).
 * - WalletBalanceWatcher: where auto-recharge and the low-balance / depleted webhooks are detected. Ingestion
 *   records the customers whose events it stored, after commit; every `flushIntervalMs` (250 ms by default) the
 *   watcher looks at each such customer's wallets once (store/wallet-topups.ts observeWalletBalance, a locked,
 *   idempotent check in Postgres), so a crossing is seen within about a second of the event that caused it, and a
 *   burst of batches costs one check per customer per tick. A recharge crossing wakes the wallet workflow (and a
 *   purchase still pending nudges it every 30 s at most, in case its wake-up was lost).
 */
import type { Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import { billingTaskQueue } from '../config/tuning';
import type { Database } from '../store/database';
import { observeCustomerWallets } from '../store/wallet-topups';
import { SEARCH_ATTRIBUTES, WALLET_WORKFLOW_TYPE, walletChangedSignal, walletWorkflowId } from '../workflows/definitions';
import { createLogger, entryLogger, LogSink } from '../logging/logger';
import { withTemporalDeadline } from './temporal-deadline';

/** Starts the customer's wallet workflow, or wakes the running one. */
export async function wakeWalletWorkflow(temporal: Client, customerId: string): Promise<void> {
  await withTemporalDeadline(temporal, () =>
    temporal.workflow.signalWithStart(WALLET_WORKFLOW_TYPE, {
      workflowId: walletWorkflowId(customerId),
      taskQueue: billingTaskQueue(),
      args: [{ customerId }],
      signal: walletChangedSignal,
      signalArgs: [],
      // A wallet workflow that failed or was terminated is started afresh: its state is all in Postgres.
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      staticSummary: `wallet of customer ${customerId}: top-ups, auto-recharge, grant expiries`,
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.customerId, value: customerId },
        { key: SEARCH_ATTRIBUTES.status, value: 'wallet' },
      ],
    }),
  );
}

const PENDING_NUDGE_MS = 30_000;

export interface WalletWatcherOptions {
  readonly flushIntervalMs?: number;
  readonly now?: () => Date;
  readonly log?: LogSink;
}

export class WalletBalanceWatcher {
  private readonly pending = new Set<string>();
  /** Customers whose wallet workflow must be woken (a new grant, new settings), kept until a signal gets through. */
  private readonly toWake = new Set<string>();
  private readonly lastNudge = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private readonly flushIntervalMs: number;
  private readonly now: () => Date;
  private readonly log: LogSink;
  private failing = false;

  constructor(
    private readonly db: Database,
    private readonly temporal: Client,
    options: WalletWatcherOptions = {},
  ) {
    this.flushIntervalMs = options.flushIntervalMs ?? 250;
    this.now = options.now ?? (() => new Date());
    this.log = options.log ?? entryLogger(createLogger('api').child({ component: 'wallet-watcher' }));
  }

  /**
   * A purchase still pending when its customer ingests again: its wake-up may have been lost (the process that
   * requested it died before signalling), so the workflow is nudged, at most once per `PENDING_NUDGE_MS`.
   */
  private pendingNudgeDue(customerId: string): boolean {
    const now = Date.now();
    if (now - (this.lastNudge.get(customerId) ?? 0) < PENDING_NUDGE_MS) return false;
    this.lastNudge.set(customerId, now);
    return true;
  }

  /** A customer's balance may have moved (events stored, settings changed): look at it on the next tick. */
  record(customerId: string): void {
    this.pending.add(customerId);
  }

  /** The wallet changed (a grant, settings): look at its balance and wake its workflow, retried each tick until done. */
  recordChange(customerId: string): void {
    this.pending.add(customerId);
    this.toWake.add(customerId);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      void this.flush().catch(() => undefined);
    }, this.flushIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush().catch(() => undefined);
  }

  /** Looks at every recorded customer once; a customer whose check fails stays recorded for the next tick. */
  flush(): Promise<void> {
    this.flushing ??= this.flushDue().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async flushDue(): Promise<void> {
    const customerIds = [...this.pending];
    this.pending.clear();
    let failure: unknown;
    for (const customerId of customerIds) {
      try {
        const { rechargeRequested, purchasePending } = await observeCustomerWallets(this.db, customerId, this.now());
        if (rechargeRequested || (purchasePending && this.pendingNudgeDue(customerId))) this.toWake.add(customerId);
      } catch (error) {
        this.pending.add(customerId);
        failure ??= error;
      }
    }
    // A recharge row is committed before its wake-up: a failed signal is tried again on the next tick.
    for (const customerId of [...this.toWake]) {
      try {
        await wakeWalletWorkflow(this.temporal, customerId);
        this.toWake.delete(customerId);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined && !this.failing) {
      this.failing = true;
      this.log({ level: 'error', msg: 'wallet balance check failed; retrying every tick', error: String((failure as Error)?.message ?? failure) });
    } else if (failure === undefined && this.failing) {
      this.failing = false;
      this.log({ level: 'info', msg: 'wallet balance check recovered' });
    }
    if (failure !== undefined) throw failure;
  }
}
