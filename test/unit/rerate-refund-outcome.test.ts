/**
 * What a re-rating shows for each credit note it issued (GET /v1/rerates/:id `refunds[].outcome`), from the note's
 * status, its refund's and its invoice's. The refund cases run end to end in
 * test/integration/rerate-refunds-every-note.test.ts; the notes without a refund (taken off an unpaid invoice) here.
 */
import { rerateRefundOutcome } from '../../domain/rerating';

test.each([
  ['a refund the gateway made', 'paid', 'succeeded', 'paid', 'refunded'],
  ['a refund the gateway refused (its amount went to the wallet)', 'paid', 'failed', 'paid', 'credited_to_wallet'],
  ['a refund the gateway has not answered', 'open', 'pending', 'paid', 'pending'],
  ['a note on an invoice still unpaid', 'open', null, 'open', 'taken_off_invoice'],
  ['a note the charge took off in full', 'paid', null, 'paid', 'taken_off_invoice'],
  ['a note on a paid invoice that neither its charge took off nor a refund gave back', 'open', null, 'paid', 'owed'],
] as const)('%s', (_case, noteStatus, refundStatus, invoiceStatus, outcome) => {
  expect(rerateRefundOutcome({ noteStatus, refundStatus, invoiceStatus })).toBe(outcome);
});
