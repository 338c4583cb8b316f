/** The credit lines an invoice carries for outcomes reversed after their period was invoiced: store/reversal-credits.ts. */
export { reversalCreditsFor } from '../store/reversal-credits';
/** Reversals of a period whose invoice is unpaid: a credit note against it instead (store/reversal-credit-notes.ts). */
export { creditReversalsOfUnpaidPeriods } from '../store/reversal-credit-notes';
