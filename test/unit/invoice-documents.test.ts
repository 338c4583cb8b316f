/**
 * Invoice documents, rendered from lines the real rating engine produced: the HTML and the PDF show every line with
 * its breakdown (tiers included), escape what they must, total exactly the sum of the lines, and a long invoice
 * flows over several PDF pages (drawn by pdfkit) whose structure (xref offsets, stream lengths, page tree) is checked
 * byte by byte and read back by poppler's pdftotext as well.
 */
import { DraftInvoiceLine, invoiceTotal, renewalInvoiceLines } from '../../domain/invoice';
import { Dec, sumMoney, toDecimal } from '../../domain/money';
import type { Charge } from '../../domain/rating';
import { buildInvoiceDocument, InvoiceDocumentError, InvoiceDocumentInput } from '../../api/documents/invoice-document';
import { escapeHtml, renderInvoiceHtml } from '../../api/documents/invoice-html';
import { renderInvoicePdf } from '../../api/documents/invoice-pdf';
import { standardFontText, wrapText } from '../../api/documents/pdf-text';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { inspectPdf, pdftotext } from '../support/pdf';

const PERIOD = { start: '2026-10-01T00:00:00.000Z', end: '2026-11-01T00:00:00.000Z' };
const NEXT = { start: '2026-11-01T00:00:00.000Z', end: '2026-12-01T00:00:00.000Z' };

const CHARGES: Charge[] = [
  {
    metricCode: 'tokens',
    displayName: 'LLM tokens',
    includedUnits: '1000',
    price: { model: 'graduated', tiers: [{ upTo: '10000', unitPrice: '0.0005' }, { upTo: '50000', unitPrice: '0.0002', flatFee: '1.00' }, { upTo: null, unitPrice: '0.0001' }] },
  },
  { metricCode: 'seats', displayName: 'Seats', price: { model: 'volume', tiers: [{ upTo: '10', unitPrice: '5.00' }, { upTo: null, unitPrice: '4.00' }] } },
  { metricCode: 'storage', displayName: 'Storage (GB)', price: { model: 'package', packageSize: '100', packagePrice: '2.50' } },
  { metricCode: 'payments', displayName: 'Payment volume', price: { model: 'percentage', rate: '0.029', minFee: '0.30', fixedFeePerEvent: '0.05' } },
];

/** Draft lines as Postgres returns them: NUMERIC(30,12) text, Dates. */
function asRows(lines: readonly DraftInvoiceLine[]): InvoiceLineRow[] {
  return lines.map((line, position) => ({
    id: `line-${position}`,
    invoice_id: 'inv-1',
    position,
    kind: line.kind,
    description: line.description,
    metric_code: line.metricCode,
    quantity: toDecimal(line.quantity).toFixed(12),
    amount: toDecimal(line.amount).toFixed(12),
    period_start: new Date(line.periodStart),
    period_end: new Date(line.periodEnd),
    breakdown: JSON.parse(JSON.stringify(line.breakdown)),
  }));
}

function invoiceRow(overrides: Partial<InvoiceRow> & { total: string }): InvoiceRow {
  return {
    id: '6f1d2c1e-0000-4000-8000-000000000001',
    number: 'INV-000042',
    customer_id: 'c1',
    subscription_id: 's1',
    kind: 'period',
    status: 'paid',
    currency: 'USD',
    period_start: new Date(NEXT.start),
    period_end: new Date(NEXT.end),
    finalized_at: new Date('2026-11-01T00:00:05Z'),
    paid_at: new Date('2026-11-01T00:00:06Z'),
    created_at: new Date('2026-11-01T00:00:05Z'),
    ...overrides,
  };
}

function renewalInput(overrides: Partial<InvoiceDocumentInput> = {}): InvoiceDocumentInput {
  const lines = renewalInvoiceLines({
    planName: 'AI Pro',
    currency: 'USD',
    flatFee: '20.00',
    charges: CHARGES,
    flatFeePeriod: NEXT,
    usage: {
      period: PERIOD,
      totals: [
        { metricCode: 'tokens', quantity: '61000' },
        { metricCode: 'seats', quantity: '12' },
        { metricCode: 'storage', quantity: '250' },
        { metricCode: 'payments', quantity: '3', eventValues: ['100.00', '5.00', '2500.00'] },
      ],
    },
    creditBucket: '5.00',
    minimumCommitment: '200.00',
  });
  return {
    invoice: invoiceRow({ total: invoiceTotal(lines, 'USD') }),
    lines: asRows(lines),
    customer: { name: 'Acme Corp', external_id: 'acme', email: 'billing@acme.test' },
    ...overrides,
  };
}

describe('the document model', () => {
  test('every line is there, with its breakdown: tiers, included units, volume tier, packages, percentage, credit, true-up', () => {
    const doc = buildInvoiceDocument(renewalInput());
    expect(doc.lines.map((line) => [line.kind, line.description])).toEqual([
      ['flat_fee', 'AI Pro subscription fee'],
      ['usage', 'LLM tokens'],
      ['usage', 'Seats'],
      ['usage', 'Storage (GB)'],
      ['usage', 'Payment volume'],
      ['credit', 'Included usage credit'],
      ['commitment_true_up', 'Minimum commitment true-up'],
    ]);
    const tokens = doc.lines[1];
    // 61,000 used - 1,000 included = 60,000 billable: 10,000 x 0.0005 + 40,000 x 0.0002 + 1.00 + 10,000 x 0.0001.
    expect(tokens.quantity).toBe('61000');
    expect(tokens.amount).toBe('15.00');
    expect(tokens.breakdown).toEqual([
      { label: 'Included units', value: '1000' },
      { label: 'Billable quantity', value: '60000' },
      { label: 'Tier 1: 0 to 10000', value: '10000 × 0.0005 = 5' },
      { label: 'Tier 2: 10000 to 50000', value: '40000 × 0.0002 + 1 = 9' },
      { label: 'Tier 3: above 50000', value: '10000 × 0.0001 = 1' },
    ]);
    expect(doc.lines[2].breakdown).toEqual([{ label: 'Volume tier: above 10', value: '12 × 4 = 48' }]);
    expect(doc.lines[3].breakdown).toEqual([{ label: 'Packages', value: '3 × 2.5 (100 units each) = 7.5' }]);
    expect(doc.lines[4].breakdown.map((row) => row.label)).toEqual(['Events', 'Reported value', 'Percentage fees', 'Fixed fees']);
    expect(doc.lines[5].breakdown[0]).toEqual({ label: 'Included credit', value: '5.00: 5.00 applied, 0.00 left' });
    expect(doc.lines[6].breakdown[0].label).toBe('Minimum commitment');
    expect(doc.lines.every((line) => line.period.length > 0)).toBe(true);
  });

  test('the total is the invoice total and equals the sum of the rounded lines', () => {
    const input = renewalInput();
    const doc = buildInvoiceDocument(input);
    const sum = sumMoney(doc.lines.map((line) => toDecimal(line.amount)));
    expect(toDecimal(doc.total).equals(sum)).toBe(true);
    expect(doc.total).toBe(toDecimal(input.invoice.total).toFixed(2));
    // Fee 20.00 + usage (15.00 + 48.00 + 7.50 + 75.85 = 146.35) - credit 5.00 + true-up to 200.00 (53.65).
    expect(doc.total).toBe('215.00');
  });

  test('a document whose lines do not add up to its total is refused, not issued', () => {
    const input = renewalInput();
    const wrong = { ...input, invoice: { ...input.invoice, total: toDecimal(input.invoice.total).plus('0.01').toFixed(2) } };
    expect(() => buildInvoiceDocument(wrong)).toThrow(InvoiceDocumentError);
  });

  test('money has the currency minor digits: JPY none, KWD three', () => {
    const line = (amount: string): DraftInvoiceLine => ({
      kind: 'flat_fee', description: 'Fee', metricCode: null, quantity: '1', amount, periodStart: NEXT.start, periodEnd: NEXT.end, breakdown: {},
    });
    const yen = buildInvoiceDocument({ invoice: invoiceRow({ currency: 'JPY', total: '1500' }), lines: asRows([line('1000'), line('500')]), customer: { name: 'K', external_id: 'k' } });
    expect([yen.lines.map((l) => l.amount), yen.total]).toEqual([['1000', '500'], '1500']);
    const dinar = buildInvoiceDocument({ invoice: invoiceRow({ currency: 'KWD', total: '1.5' }), lines: asRows([line('1.250'), line('0.250')]), customer: { name: 'K', external_id: 'k' } });
    expect([dinar.lines.map((l) => l.amount), dinar.total]).toEqual([['1.250', '0.250'], '1.500']);
  });

  test('a credit note names the invoice it credits and why', () => {
    const doc = buildInvoiceDocument({
      invoice: { ...invoiceRow({ kind: 'credit_note', number: 'CN-000003', subscription_id: null, total: '12.50' }), credited_invoice_id: 'inv-9', reason: 'Outage on 3 Nov' },
      lines: asRows([
        {
          kind: 'flat_fee' as never, description: 'Refund for invoice INV-000009: Outage on 3 Nov', metricCode: null, quantity: '1', amount: '12.50',
          periodStart: NEXT.start, periodEnd: NEXT.end, breakdown: { credited_invoice_id: 'inv-9', paid: '20', previously_credited: '0' },
        },
      ]).map((row) => ({ ...row, kind: 'refund' })),
      customer: { name: 'Acme', external_id: 'acme' },
      creditedInvoiceNumber: 'INV-000009',
    });
    expect(doc.title).toBe('Credit note');
    expect(doc.notes).toEqual(expect.arrayContaining(['Credits invoice INV-000009.', 'Reason: Outage on 3 Nov']));
    expect(doc.lines[0].breakdown).toEqual(expect.arrayContaining([{ label: 'Credits invoice', value: 'INV-000009' }, { label: 'Paid on that invoice', value: '20' }]));
    expect(doc.total).toBe('12.50');
  });

  test('a credit total taken off an unpaid invoice of its time says so, not that it is owed or refunded', () => {
    const input = (refund: InvoiceDocumentInput['refund']): InvoiceDocumentInput => ({
      invoice: { ...invoiceRow({ kind: 'closing', number: 'INV-000012', total: '-10.00', status: 'paid' }), credited_invoice_id: 'inv-9' },
      lines: asRows([{ kind: 'proration_credit' as never, description: 'Unused time', metricCode: null, quantity: '1', amount: '-10.00', periodStart: PERIOD.start, periodEnd: PERIOD.end, breakdown: {} }]),
      customer: { name: 'Acme', external_id: 'acme' },
      creditedInvoiceNumber: 'INV-000009',
      refund,
    });
    expect(buildInvoiceDocument(input(null)).notes).toEqual([
      'This invoice is a credit of 10.00 USD to the customer.',
      'It is taken off what invoice INV-000009 of the same time owes, instead of being refunded.',
    ]);
    // Refunded after all (the charge was already at the gateway for the whole total): the refund is what it says.
    expect(buildInvoiceDocument(input({ status: 'succeeded', amount: '10.00' })).notes).toContain('10.00 USD was refunded to the original payment.');
    // Taken off in part (the invoice owed 6.00 of the 10.00): the part, then what became of the rest.
    const partly = (refund: InvoiceDocumentInput['refund']): InvoiceDocumentInput => ({ ...input(refund), invoice: { ...input(refund).invoice, status: 'open', amount_taken_off: '6.00' } });
    expect(buildInvoiceDocument(partly(null)).notes.slice(1)).toEqual(['6.00 USD of it is taken off what invoice INV-000009 of the same time owes.', 'The other 4.00 USD is owed to the customer.']);
    expect(buildInvoiceDocument(partly({ status: 'succeeded', amount: '4.00' })).notes.slice(1)).toEqual(['6.00 USD of it is taken off what invoice INV-000009 of the same time owes.', '4.00 USD was refunded to the original payment.']);
  });

  test('a breakdown of an unknown shape is shown field by field, not dropped', () => {
    const doc = buildInvoiceDocument({
      invoice: invoiceRow({ total: '3.00' }),
      lines: asRows([{ kind: 'adjustment' as never, description: 'Manual', metricCode: null, quantity: '1', amount: '3.00', periodStart: NEXT.start, periodEnd: NEXT.end, breakdown: { approvedBy: 'ops', ticket: 42, nested: { x: 1 } } }]),
      customer: { name: 'Acme', external_id: 'acme' },
    });
    expect(doc.lines[0].breakdown).toEqual([{ label: 'approved by', value: 'ops' }, { label: 'ticket', value: '42' }]);
  });
});

describe('HTML', () => {
  test('one row per line and one per breakdown row, tiers included, and the total', () => {
    const doc = buildInvoiceDocument(renewalInput());
    const html = renderInvoiceHtml(doc);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<tr class="line"/g)).toHaveLength(doc.lines.length);
    expect(html.match(/<tr class="breakdown">/g)).toHaveLength(doc.lines.reduce((n, line) => n + line.breakdown.length, 0));
    expect(html).toContain('<td class="breakdown-label">Tier 1: 0 to 10000</td>');
    expect(html).toContain('<td class="breakdown-value" colspan="2">40000 × 0.0002 + 1 = 9</td>');
    for (const line of doc.lines) {
      expect(html).toContain(`<div class="description">${escapeHtml(line.description)}</div>`);
      expect(html).toContain(`<td class="num amount">${line.amount}</td>`);
    }
    expect(html).toContain(`<td class="num total">${doc.total} USD</td>`);
    expect(html).not.toMatch(/<script|<link|src=/i); // self-contained, runs nothing
  });

  test('text from the database is escaped everywhere: names, descriptions, breakdown values', () => {
    const hostile = `<script>alert("x")</script> & 'Co'`;
    const input = renewalInput({ customer: { name: hostile, external_id: '"><img src=x onerror=alert(1)>', email: 'a&b@example.com' } });
    const lines = input.lines.map((line, index) => (index === 1 ? { ...line, description: `<b>tokens</b> "quoted"` } : line));
    const html = renderInvoiceHtml(buildInvoiceDocument({ ...input, lines }));
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>tokens');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;Co&#39;');
    expect(html).toContain('&lt;b&gt;tokens&lt;/b&gt; &quot;quoted&quot;');
    expect(html).toContain('a&amp;b@example.com');
    expect(escapeHtml(`&<>"'`)).toBe('&amp;&lt;&gt;&quot;&#39;');
  });
});

describe('PDF', () => {
  test('a valid PDF that shows every line, every breakdown row and the total', () => {
    const doc = buildInvoiceDocument(renewalInput());
    const pdf = renderInvoicePdf(doc, { createdAt: new Date('2026-11-01T00:00:05Z') });
    const read = inspectPdf(pdf);
    expect(read.version).toBe('1.3');
    expect(read.pageCount).toBe(1);
    for (const line of doc.lines) {
      expect(read.text).toContain(line.description);
      expect(read.pages[0]).toContain(line.amount);
      for (const row of line.breakdown) expect(read.text).toContain(`${row.label}: ${row.value}`);
    }
    expect(read.pages[0]).toContain(`${doc.total} USD`);
    expect(read.text).toContain('Invoice INV-000042 · page 1 of 1');
    expect(read.info).toMatchObject({ CreationDate: '(D:20261101000005Z)', Title: '(Invoice INV-000042)', Producer: '(meterloop)' });

    const poppler = pdftotext(pdf);
    if (poppler !== undefined) {
      for (const line of doc.lines) expect(poppler).toContain(line.description);
      expect(poppler).toContain('Tier 2: 10000 to 50000: 40000 × 0.0002 + 1 = 9');
      expect(poppler).toContain(`${doc.total} USD`);
    }
  });

  test('a long invoice flows over several pages, each with the table header and "page n of m"; nothing is lost', () => {
    const many: DraftInvoiceLine[] = Array.from({ length: 140 }, (_, i) => ({
      kind: 'usage',
      description: i % 7 === 0 ? `Metric ${i} with a description long enough to wrap over more than one line of the description column` : `Metric ${i}`,
      metricCode: `m${i}`,
      quantity: String(i * 3),
      amount: new Dec(i).dividedBy(4).toFixed(2),
      periodStart: PERIOD.start,
      periodEnd: PERIOD.end,
      breakdown: { model: 'per_unit', unitPrice: '0.25', includedUnits: '0', billableQuantity: String(i * 3), amount: new Dec(i * 3).times('0.25').toFixed() },
    }));
    const doc = buildInvoiceDocument({ invoice: invoiceRow({ total: invoiceTotal(many, 'USD') }), lines: asRows(many), customer: { name: 'Big Co', external_id: 'big' } });
    const pdf = renderInvoicePdf(doc);
    const read = inspectPdf(pdf);
    expect(read.pageCount).toBeGreaterThanOrEqual(4);
    read.pages.forEach((page, index) => {
      expect(page).toContain(`Invoice INV-000042 · page ${index + 1} of ${read.pageCount}`);
      expect(page).toContain('DESCRIPTION');
      if (index > 0) expect(page).toContain('Invoice INV-000042 (continued)');
    });
    for (const line of doc.lines) {
      expect(read.text).toContain(line.description);
      expect(read.text).toContain(`Per unit: ${line.quantity} × 0.25`);
    }
    const amounts = read.pages.flat().filter((text) => /^\d+\.\d{2}$/.test(text));
    expect(amounts).toHaveLength(doc.lines.length);
    expect(sumMoney(amounts.map((amount) => toDecimal(amount))).toFixed(2)).toBe(doc.total);
    expect(read.pages[read.pages.length - 1]).toContain(`${doc.total} USD`);
    // Everything drawn stays on the A4 page: content above the footer's band, all of it inside the margins.
    for (const page of read.runs) {
      for (const run of page) {
        expect(run.y).toBeGreaterThan(20);
        expect(run.x).toBeGreaterThanOrEqual(50);
        if (!/ · page \d+ of \d+$/.test(run.text)) expect(run.y).toBeGreaterThanOrEqual(64);
      }
    }
    expect(read.info.CreationDate).toBeUndefined(); // no date given: none made up

    const poppler = pdftotext(pdf);
    if (poppler !== undefined) {
      expect(poppler).toContain(`page ${read.pageCount} of ${read.pageCount}`);
      for (const line of doc.lines.filter((_, i) => i % 10 === 0)) expect(poppler).toContain(line.description);
    }
  });

  test('parentheses, backslashes and non-ASCII text survive; characters the standard fonts lack become "?" or a plain form', () => {
    expect(standardFontText('Café – 5 € (a) \\ b')).toBe('Café – 5 € (a) \\ b');
    expect(standardFontText('日本 → x\u0007 ≤ 3')).toBe('?? -> x  <= 3');
    const input = renewalInput({ customer: { name: 'Zoë (Café) \\ Ltd – “quoted” → 日本', external_id: 'zoe' } });
    const pdf = renderInvoicePdf(buildInvoiceDocument(input));
    expect(inspectPdf(pdf).text).toContain('Zoë (Café) \\ Ltd – “quoted” -> ??');
    const poppler = pdftotext(pdf);
    if (poppler !== undefined) expect(poppler).toContain('Zoë (Café) \\ Ltd – “quoted” -> ??');
  });

  test('wrapping breaks at spaces within the width, and a word wider than a line is cut', () => {
    const measure = (value: string): number => value.length * 5; // a monospaced stand-in for the font's widths
    const lines = wrapText('the quick brown fox jumps over the lazy dog '.repeat(5), measure, 150);
    expect(lines.length).toBeGreaterThan(3);
    for (const line of lines) expect(measure(line)).toBeLessThanOrEqual(150);
    expect(lines.join(' ')).toBe('the quick brown fox jumps over the lazy dog '.repeat(5).trim());
    const cut = wrapText('x'.repeat(100), measure, 50);
    expect(cut).toEqual(Array.from({ length: 10 }, () => 'x'.repeat(10)));
    expect(wrapText('', measure, 50)).toEqual(['']);
  });

  test('the same document gives the same bytes, dated or not', () => {
    const doc = buildInvoiceDocument(renewalInput());
    expect(renderInvoicePdf(doc).equals(renderInvoicePdf(doc))).toBe(true);
    const createdAt = new Date('2026-11-01T00:00:05Z');
    expect(renderInvoicePdf(doc, { createdAt }).equals(renderInvoicePdf(doc, { createdAt }))).toBe(true);
  });
});
