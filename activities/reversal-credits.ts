/** The credit lines an invoice carries for outcomes reversed after their period was invoiced: store/reversal-credits.ts. */
export { reversalCreditsFor } from '../store/reversal-credits';
