/**
 * One wallet workflow per customer (id `wallet:<customerId>`, docs/wallets.md), started or woken by
 * signalWithStart (`walletChanged`) whenever a top-up or recharge is requested, a grant is added or the settings
 * change. Each turn:
 *
 *   timers due (grant.expiring notices, expiry ledger entries)
 *     -> pending top-ups, each: invoice -> charge (gateway) -> settle (purchased grant once paid, else declined)
 *     -> sleep until the next grant expiry or notice, or until woken
 *
 * Every step is idempotent on its Postgres rows (the top-up's invoice, `payment:<invoice>:1`, the grant key
 * `top-up:<id>`), so a crash between the charge and the grant replays into the same grant, once. History stays
 * bounded: it grows only when the workflow wakes, and a wake-up that finds it past 1,000 events (or the server
 * suggesting it) continues as new first.
 */
import { allHandlersFinished, condition, continueAsNew, log, setHandler, workflowInfo } from '@temporalio/workflow';
import type { WalletWorkflowInput } from '../contract/wallet';
import { local, remote } from './activity-stubs';
import { walletChangedSignal } from './wallet-definitions';

export type { WalletWorkflowInput };

/** Continue as new past this many history events (a turn is about ten). */
const HISTORY_LIMIT = 1_000;
/** Turns in a row that find work already due before the workflow sleeps anyway (at least MIN_TIMER_MS). */
const MAX_IMMEDIATE_TURNS = 3;
const MIN_TIMER_MS = 1_000;

export async function walletWorkflow(input: WalletWorkflowInput): Promise<void> {
  let woken = false;
  setHandler(walletChangedSignal, () => {
    woken = true;
  });
  // Top-ups whose step failed for good (bad data): left pending for ops, not retried in a loop by this run.
  const stuck = new Set<string>();

  let immediateTurns = 0;
  const historyLimit = input.historyLimit ?? HISTORY_LIMIT;
  const historyFull = (): boolean => workflowInfo().historyLength >= historyLimit || workflowInfo().continueAsNewSuggested;
  while (!historyFull()) {
    woken = false;
    const at = new Date().toISOString();
    await local.runWalletTimers({ customerId: input.customerId, at });
    const agenda = await local.walletAgenda({ customerId: input.customerId, at });
    const due = agenda.pendingTopUpIds.filter((id) => !stuck.has(id));
    if (due.length > 0) {
      for (const topUpId of due) {
        try {
          await purchase(topUpId);
        } catch (error) {
          stuck.add(topUpId);
          log.error('top-up step failed for good; left pending', { topUpId, error: String((error as Error)?.message ?? error) });
        }
      }
      continue; // a settled purchase may have crossed a threshold again: look before sleeping
    }
    const wakeInMs = agenda.nextTimerAt ? new Date(agenda.nextTimerAt).getTime() - Date.now() : undefined;
    // Already due (a grant added between the two steps above): another turn at once, a few times, never a 0 ms timer.
    if (wakeInMs !== undefined && wakeInMs <= 0 && immediateTurns < MAX_IMMEDIATE_TURNS) {
      immediateTurns += 1;
      continue;
    }
    immediateTurns = 0;
    if (wakeInMs === undefined) await condition(() => woken);
    else await condition(() => woken, Math.max(MIN_TIMER_MS, wakeInMs));
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof walletWorkflow>(input);
}

/** Invoice, charge, settle: the grant exists only once the invoice is paid. */
async function purchase(topUpId: string): Promise<void> {
  const invoice = await local.prepareTopUpInvoice({ topUpId });
  if (invoice.invoiceStatus === 'open') {
    try {
      // A decline is a result; a charge that fails for good (invoice not chargeable) is settled as declined too.
      await remote.chargeInvoice({ invoiceId: invoice.invoiceId, attempt: 1 });
    } catch (error) {
      log.warn('top-up charge failed for good; settling it as declined', { topUpId, error: String((error as Error)?.message ?? error) });
    }
  }
  await local.settleTopUp({ topUpId, at: new Date().toISOString() });
}
