/**
 * Every patch of the re-rating workflow (./rerate.ts). The subscription's are in ./subscription/patch-ids.ts, with
 * generations; a re-rating runs for its decision window at most and never continues as new, so it asks each of its
 * patches with a bare `patched()` where the patched code is, and only where behaviour differs.
 */

/**
 * A deterministic failure is recorded on the re-rating's row (`failed`, with its code and message) before the
 * workflow fails. Histories recorded before failed straight after the `rerate_failed` search attribute. Asked only
 * where a deterministic failure ends the workflow.
 */
export const RERATE_FAILURE_RECORDED = 'rerate-failure-recorded-on-row';

/**
 * A credit carried out as several notes (the re-rated invoice's and the period's threshold invoices' or adjustments')
 * has every pending refund sent by one step (`refundRerateCreditNotes`), each under its own key. Histories recorded
 * before refunded the first note only (`refundCreditNote`) and left the rest to the janitor. Asked only where a
 * carried-out credit is refunded.
 */
export const RERATE_REFUNDS_EVERY_NOTE = 'rerate-refunds-every-note';
