/**
 * The credit lines an invoice carries for outcomes reversed after their period was invoiced: store/reversal-credits.ts;
 * what an unpaid invoice of their period still owes is settled first by a credit note against it
 * (store/reversal-credit-notes.ts).
 */
export { reversalCreditsOfNextInvoice } from '../store/reversal-credit-notes';
