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
import { loweredBeyondCorrectionCash, loweredLines, type CarriedOutCorrection } from '../domain/wallet-invoice';
import type { LoweredLine } from '../domain/wallet';
import type { InvoiceRow } from '../store/invoices';
import { listFinalizedRerates, type RerateProposal } from '../store/rerates';
import type { Transaction } from '../store/transactions';
import { drawLineRows } from '../store/wallet-draw-lines';
import { invoiceDrawKey } from '../store/wallet-draws';
import { findWallet, plannedLineGiveBacks, reverseWalletCreditsByLine } from '../store/wallets';

/**
 * The lines a re-rating's credit may give back to the draw: lowered by the difference, less the cash that earlier
 * carried-out re-ratings of the invoice (adjustments paid by card) still hold of each line, which goes back first.
 */
async function walletLoweredLines(trx: Transaction, rerateId: string, invoice: InvoiceRow, drawKey: string, lines: readonly DraftInvoiceLine[]): Promise<LoweredLine[]> {
  const lowered = loweredLines(lines);
  // Each builds on all the ones carried out before it: by how many, their order.
  const earlier = (await listFinalizedRerates(trx, invoice.id, rerateId)).sort((a, b) => (a.proposal?.buildsOn?.length ?? 0) - (b.proposal?.buildsOn?.length ?? 0));
  if (earlier.length === 0) return lowered;
  const wallet = await findWallet(trx, invoice.customer_id, invoice.currency);
  const rows = wallet ? await drawLineRows(trx, wallet.id, drawKey) : [];
  const corrections: CarriedOutCorrection[] = earlier.map((correction) => ({
    outcome: correction.proposal?.outcome ?? 'none',
    lines: correction.proposal?.lines ?? [],
    walletGiven: rows.filter((row) => row.part === `rerate:${correction.id}`).map((row) => ({ lineKey: row.line_key, amount: row.amount })),
  }));
  return loweredBeyondCorrectionCash(lowered, corrections);
}

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
    lowered: await walletLoweredLines(trx, rerateId, invoice, drawKey, difference.lines),
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
    lowered: await walletLoweredLines(trx, rerateId, invoice, proposal.walletDrawKey, proposal.lines),
    cap: proposal.walletCreditBack,
    at,
  });
  return toDecimal(given);
}
