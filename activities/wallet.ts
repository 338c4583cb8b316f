/**
 * Prepaid credit on invoices (issue 12, docs/wallets.md): after an invoice's lines are built, the customer's wallet
 * pays what it may of the usage, in the invoice's own transaction, so the ledger entries and the invoice commit
 * together or not at all. Customers without a wallet get exactly the invoice they got before.
 */
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';
import { creditsAppliedLines, walletPayableCharges } from '../domain/wallet-invoice';
import type { Transaction } from '../store/transactions';
import { applyWalletCredits } from '../store/wallets';

export interface InvoiceWalletRequest {
  readonly customerId: string;
  readonly currency: string;
  /** Identifies the invoice (subscription, kind, period start): drawing twice with it draws once. */
  readonly drawKey: string;
  /** The usage period the invoice bills: grants in effect during it may pay. */
  readonly usagePeriod: PeriodBounds;
  readonly lines: readonly DraftInvoiceLine[];
}

/** The invoice's lines, then one "credits applied" line per grant drawn on. */
export async function withWalletCredits(trx: Transaction, request: InvoiceWalletRequest): Promise<DraftInvoiceLine[]> {
  const charges = walletPayableCharges(request.lines, request.currency);
  if (charges.length === 0) return [...request.lines];
  const applied = await applyWalletCredits(trx, {
    customerId: request.customerId,
    currency: request.currency,
    drawKey: request.drawKey,
    charges,
    during: { from: new Date(request.usagePeriod.start), to: new Date(request.usagePeriod.end) },
    description: `usage ${request.usagePeriod.start.slice(0, 10)} to ${request.usagePeriod.end.slice(0, 10)}`,
  });
  return [...request.lines, ...creditsAppliedLines(applied, request.currency, request.usagePeriod)];
}
