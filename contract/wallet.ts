/**
 * The wallet workflow's activities (issue 12 point 3, docs/wallets.md): requests and results.
 */
export interface WalletWorkflowInput {
  readonly customerId: string;
  /** Continue as new past this many history events (1,000 by default; tests pass a small one). */
  readonly historyLimit?: number;
}

export interface WalletTimersRequest {
  readonly customerId: string;
  /** The workflow's clock: notices and expiries due at or before it are done. */
  readonly at: string;
}

export interface WalletTimersResult {
  readonly notices: number;
  readonly expired: number;
}

export interface WalletAgendaResult {
  readonly pendingTopUpIds: string[];
  /** When the workflow must wake next (a grant's expiry or notice); null when nothing is scheduled. */
  readonly nextTimerAt: string | null;
}

export interface TopUpInvoiceResult {
  readonly invoiceId: string;
  readonly invoiceNumber: string | null;
  readonly invoiceStatus: string;
}

export interface SettleTopUpRequest {
  readonly topUpId: string;
  readonly at: string;
}

export interface SettleTopUpResult {
  readonly status: 'pending' | 'paid' | 'declined';
  readonly grantId: string | null;
  readonly declineCode: string | null;
}

export interface WalletActivities {
  runWalletTimers(request: WalletTimersRequest): Promise<WalletTimersResult>;
  walletAgenda(request: WalletTimersRequest): Promise<WalletAgendaResult>;
  prepareTopUpInvoice(request: { topUpId: string }): Promise<TopUpInvoiceResult>;
  settleTopUp(request: SettleTopUpRequest): Promise<SettleTopUpResult>;
}
