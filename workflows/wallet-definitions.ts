/**
 * The per-customer wallet workflow's id, type and signal (workflows/wallet.ts, docs/wallets.md). Re-exported by
 * workflows/definitions so the API knows it without importing workflow code.
 */
import { defineSignal } from '@temporalio/workflow';

export const WALLET_WORKFLOW_TYPE = 'walletWorkflow';

/** One wallet workflow per customer (all its currencies). */
export function walletWorkflowId(customerId: string): string {
  return `wallet:${customerId}`;
}

/** "Look again": a top-up or recharge was requested, a grant was added, or the settings changed. Carries nothing. */
export const walletChangedSignal = defineSignal<[]>('walletChanged');
