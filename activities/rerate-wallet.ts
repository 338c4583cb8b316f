/**
 * Re-rating and prepaid credit (issue 12, docs/wallets.md). A re-rating that lowers an invoice the wallet paid
 * gives credit back to the wallet first, up to what the invoice's draw still holds (newest draw first, to the
 * grants it came from, or a goodwill grant for expired ones); the credit note refunds only the rest in cash.
 * Credit goes back first because the wallet paid the usage that was over-billed, and returning prepaid credit
 * as cash would turn promotional or plan credit into money.
 */
import { Dec, formatMoney, toDecimal, ZERO } from '../domain/money';
import type { InvoiceRow } from '../store/invoices';
import type { RerateProposal } from '../store/rerates';
import type { Transaction } from '../store/transactions';
import { invoiceDrawKey, outstandingDraw } from '../store/wallet-draws';
import { reverseWalletCredits } from '../store/wallets';

/** The proposal's wallet part: for a credit (total < 0) on an invoice that drew on the wallet, what goes back. */
export async function proposedWalletCreditBack(trx: Transaction, invoice: InvoiceRow, total: string): Promise<Pick<RerateProposal, 'walletCreditBack' | 'walletDrawKey'>> {
  const credit = toDecimal(total);
  if (!credit.isNegative()) return {};
  const drawKey = invoiceDrawKey(invoice);
  const back = Dec.min(toDecimal(await outstandingDraw(trx, invoice.customer_id, invoice.currency, drawKey)), credit.abs());
  if (back.lte(ZERO)) return {};
  return { walletCreditBack: formatMoney(back, invoice.currency), walletDrawKey: drawKey };
}

/**
 * Gives the proposal's wallet part back, in the finalizing transaction, once per re-rating (keyed by it).
 * Returns what went back (never more than the draw still holds at this moment).
 */
export async function giveBackWalletCredit(trx: Transaction, rerateId: string, invoice: InvoiceRow, proposal: RerateProposal, at: Date): Promise<Dec> {
  if (!proposal.walletCreditBack || !proposal.walletDrawKey) return ZERO;
  const given = await reverseWalletCredits(trx, {
    customerId: invoice.customer_id,
    currency: invoice.currency,
    drawKey: proposal.walletDrawKey,
    reversalKey: `rerate:${rerateId}`,
    amount: proposal.walletCreditBack,
    at,
  });
  return toDecimal(given);
}

