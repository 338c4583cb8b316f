/**
 * The wallet workflow's steps (workflows/wallet.ts, docs/wallets.md). Each is one or a few short transactions,
 * idempotent on its rows, so a retry or a replay after a crash finds what the first try wrote. After any step that
 * moves the balance, the wallet's thresholds are looked at again (a recharge re-arms its threshold; an expiry may
 * cross one).
 */
import type {
  SettleTopUpRequest,
  SettleTopUpResult,
  TopUpInvoiceResult,
  WalletActivities,
  WalletAgendaResult,
  WalletTimersRequest,
  WalletTimersResult,
} from '../contract/wallet';
import type { Database } from '../store/database';
import { findTopUp, observeCustomerWallets, prepareTopUpInvoice, runWalletTimers, settleTopUp, walletAgenda } from '../store/wallet-topups';

export function createWalletTopUpActivities(db: Database): WalletActivities {
  return {
    async runWalletTimers(request: WalletTimersRequest): Promise<WalletTimersResult> {
      const at = new Date(request.at);
      const result = await runWalletTimers(db, request.customerId, at);
      if (result.expired > 0) await observeCustomerWallets(db, request.customerId, at);
      return result;
    },

    async walletAgenda(request: WalletTimersRequest): Promise<WalletAgendaResult> {
      return walletAgenda(db, request.customerId, new Date(request.at));
    },

    async prepareTopUpInvoice(request: { topUpId: string }): Promise<TopUpInvoiceResult> {
      const invoice = await prepareTopUpInvoice(db, request.topUpId);
      return { invoiceId: invoice.id, invoiceNumber: invoice.number, invoiceStatus: invoice.status };
    },

    async settleTopUp(request: SettleTopUpRequest): Promise<SettleTopUpResult> {
      const at = new Date(request.at);
      const settled = await settleTopUp(db, request.topUpId, at);
      const topUp = await findTopUp(db, request.topUpId);
      if (topUp) await observeCustomerWallets(db, topUp.customer_id, at);
      return settled;
    },
  };
}

