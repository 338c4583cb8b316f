/**
 * A credit total refunded across several payments, one refund per payment, some paid back and some refused (their
 * amount went to the wallet): the document tells each outcome with its own amount. Before, it summed the parts
 * under the worst status: "The refund of 30.000 KWD ... was refused" where 20.000 went back to the card.
 */
import { buildInvoiceDocument } from '../../api/documents/invoice-document';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';

const MAY = { period_start: new Date('2032-05-01T00:00:00Z'), period_end: new Date('2032-06-01T00:00:00Z') };

const credit: InvoiceRow = {
  id: '6f1d2c1e-0000-4000-8000-000000000077',
  number: 'INV-000703',
  customer_id: 'c1',
  subscription_id: 's1',
  kind: 'closing',
  status: 'paid',
  currency: 'KWD',
  ...MAY,
  total: '-30.000000000000',
  finalized_at: new Date('2032-05-20T00:00:00Z'),
  paid_at: null,
  created_at: new Date('2032-05-20T00:00:00Z'),
} as InvoiceRow;

const lines: InvoiceLineRow[] = [
  { id: 'l1', invoice_id: credit.id, position: 0, kind: 'proration', description: 'Unused time', metric_code: null, quantity: '1.000000000000', amount: '-30.000000000000', ...MAY, breakdown: {} } as InvoiceLineRow,
];

const customer = { name: 'Split Refund Ltd', external_id: 'split' };

test('parts refunded and parts refused: each outcome with its own amount, in the currency minor digits', () => {
  const doc = buildInvoiceDocument({
    invoice: credit,
    lines,
    customer,
    refund: { status: 'failed', amount: '30', parts: [{ status: 'succeeded', amount: '20.000' }, { status: 'failed', amount: '7.5' }, { status: 'pending', amount: '2.5' }] },
  });
  expect(doc.notes).toEqual([
    'This invoice is a credit of 30.000 KWD to the customer.',
    "20.000 KWD was refunded to the original payment; the refund of 7.500 KWD to the original payment was refused, so it was added to the customer's credit balance instead; the refund of 2.500 KWD to the original payment is pending.",
  ]);
});

test('one outcome (or no parts given) reads as before', () => {
  const doc = buildInvoiceDocument({ invoice: credit, lines, customer, refund: { status: 'succeeded', amount: '30', parts: [{ status: 'succeeded', amount: '20' }, { status: 'succeeded', amount: '10' }] } });
  expect(doc.notes.at(-1)).toBe('30.000 KWD was refunded to the original payment.');
  const plain = buildInvoiceDocument({ invoice: credit, lines, customer, refund: { status: 'failed', amount: '30' } });
  expect(plain.notes.at(-1)).toBe("The refund of 30.000 KWD to the original payment was refused, so it was added to the customer's credit balance instead.");
});
