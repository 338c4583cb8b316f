/**
 * Re-rating and prepaid credit (issue 12, docs/wallets.md). A re-rating that lowers an invoice the wallet paid
 * gives credit back to the wallet first, up to what the invoice's draw still holds (newest draw first, to the
 * grants it came from, or a goodwill grant for expired ones); the credit note refunds only the rest in cash.
 * Credit goes back first because the wallet paid the usage that was over-billed, and returning prepaid credit
 * as cash would turn promotional or plan credit into money.
 */
import type { DraftInvoiceLine, PeriodBounds } from '../domain/invoice';
import { Dec, formatMoney, sumMoney, toDecimal, ZERO } from '../domain/money';
import type { InvoiceRow } from '../store/invoices';
import type { RerateProposal } from '../store/rerates';
import type { Transaction } from '../store/transactions';
import { invoiceBillingUsagePeriod, invoiceDrawKey, outstandingDraw } from '../store/wallet-draws';
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

/**
 * Outcomes reversed after their period was invoiced (activities/reversal-credits.ts): when the invoice that billed
 * the period drew on the wallet, the credit goes back to the wallet first, like a re-rating's, and the next
 * invoice carries a line that offsets what went back, so only the rest reduces what is paid in cash. Keyed by the
 * invoice that carries the credit (`creditedOn`): its transaction runs once. No draw, no line.
 */
export async function reversalCreditToWallet(
  trx: Transaction,
  request: { subscriptionId: string; customerId: string; currency: string; creditedOn: string; period: PeriodBounds; creditLines: readonly DraftInvoiceLine[] },
): Promise<DraftInvoiceLine[]> {
  const credit = sumMoney(request.creditLines.map((line) => toDecimal(line.amount)));
  if (!credit.isNegative()) return [];
  const billed = await invoiceBillingUsagePeriod(trx, request.subscriptionId, new Date(request.period.start));
  if (!billed) return [];
  const drawKey = invoiceDrawKey(billed);
  const given = toDecimal(
    await reverseWalletCredits(trx, { customerId: request.customerId, currency: request.currency, drawKey, reversalKey: `reversal:${request.creditedOn}`, amount: credit.abs().toString(), at: new Date() }),
  );
  if (given.lte(ZERO)) return [];
  return [
    {
      kind: 'credit',
      description: 'Reversed usage credit returned to your prepaid credits',
      metricCode: null,
      quantity: '1',
      amount: formatMoney(given, request.currency),
      periodStart: request.period.start,
      periodEnd: request.period.end,
      breakdown: { walletGiveBack: formatMoney(given, request.currency), drawKey },
    },
  ];
}
