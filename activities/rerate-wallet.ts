/**
 * Re-rating and prepaid credit (issue 12, docs/wallets.md). A re-rating that lowers an invoice the wallet paid gives
 * each lowered line's credit back to the grants that paid that line (up to what each paid of it and still holds of
 * the invoice's draw, newest draw first, a goodwill grant for expired ones); the credit note refunds the rest in cash.
 * Credit goes back because the wallet paid that usage, and returning prepaid credit as cash would turn promotional
 * or plan credit into money; only to the grants that paid the line, because usage a threshold invoice charged to
 * the card, or a grant of another scope paid, is not this grant's: handed to it, cash became promotional credit.
 */
import type { DraftInvoiceLine } from '../domain/invoice';
import { Dec, formatMoney, sumMoney, toDecimal, ZERO } from '../domain/money';
import type { InvoiceRow } from '../store/invoices';
import type { RerateProposal } from '../store/rerates';
import type { Transaction } from '../store/transactions';
import { invoiceDrawKey, walletLoweredLines } from '../store/wallet-draws';
import { plannedLineGiveBacks, reverseWalletCreditsByLine } from '../store/wallets';

/** The proposal's wallet part: for a credit (total < 0) on an invoice that drew on the wallet, what goes back. */
export async function proposedWalletCreditBack(
  trx: Transaction,
  rerateId: string,
  invoice: InvoiceRow,
  difference: { total: string; lines: readonly DraftInvoiceLine[] },
): Promise<Pick<RerateProposal, 'walletCreditBack' | 'walletDrawKey'>> {
  const credit = toDecimal(difference.total);
  if (!credit.isNegative()) return {};
  const drawKey = invoiceDrawKey(invoice);
  const planned = await plannedLineGiveBacks(trx, {
    customerId: invoice.customer_id,
    currency: invoice.currency,
    drawKey,
    lowered: await walletLoweredLines(trx, invoice, drawKey, difference.lines, rerateId),
    cap: credit.abs().toString(),
  });
  const back = sumMoney(planned.map((line) => toDecimal(line.amount)));
  if (back.lte(ZERO)) return {};
  return { walletCreditBack: formatMoney(back, invoice.currency), walletDrawKey: drawKey };
}

/**
 * Gives the proposal's wallet part back, in the finalizing transaction, once per re-rating (keyed by it), line by
 * line as proposed. Returns what went back: never more than proposed, nor than the grants that paid the lowered
 * lines still hold of the draw at this moment (a proposal stored before give-backs went by line is held to that too).
 */
export async function giveBackWalletCredit(trx: Transaction, rerateId: string, invoice: InvoiceRow, proposal: RerateProposal, at: Date): Promise<Dec> {
  if (!proposal.walletCreditBack || !proposal.walletDrawKey) return ZERO;
  const given = await reverseWalletCreditsByLine(trx, {
    customerId: invoice.customer_id,
    currency: invoice.currency,
    drawKey: proposal.walletDrawKey,
    reversalKey: `rerate:${rerateId}`,
    lowered: await walletLoweredLines(trx, invoice, proposal.walletDrawKey, proposal.lines, rerateId),
    cap: proposal.walletCreditBack,
    at,
  });
  return toDecimal(given);
}
