/**
 * An invoice or credit note as a PDF (A4, Helvetica): the same InvoiceDocument the HTML shows, laid out top to
 * bottom, continuing on as many pages as the lines need. Every page carries the table header and a footer with
 * the number and "page n of m"; a line and its breakdown are kept together on one page when they fit on one.
 */
import type { InvoiceDocument } from './invoice-document';
import { A4, PdfFont, PdfOperation, PdfPage, textWidth, wrapText, writePdf } from './pdf';

const LEFT = 50;
const RIGHT = A4.width - 50;
const TOP = A4.height - 50;
/** Content stops here; the footer sits below. */
const BOTTOM = 64;
const NUMBER_X = LEFT;
const DESCRIPTION_X = LEFT + 24;
const QUANTITY_RIGHT = RIGHT - 110;
const AMOUNT_RIGHT = RIGHT;
const DESCRIPTION_WIDTH = QUANTITY_RIGHT - 90 - DESCRIPTION_X;
const BREAKDOWN_X = DESCRIPTION_X + 12;
const BREAKDOWN_WIDTH = RIGHT - BREAKDOWN_X;
const MUTED = 0.38;

interface Cursor {
  operations: PdfOperation[];
  y: number;
}

class Layout {
  readonly pages: PdfOperation[][] = [];
  private cursor!: Cursor;

  constructor(private readonly doc: InvoiceDocument) {
    this.newPage(true);
  }

  get y(): number {
    return this.cursor.y;
  }

  text(x: number, y: number, value: string, font: PdfFont, size: number, gray = 0): void {
    this.cursor.operations.push({ kind: 'text', x, y, text: value, font, size, gray });
  }

  textRight(right: number, y: number, value: string, font: PdfFont, size: number, gray = 0): void {
    this.text(right - textWidth(value, font, size), y, value, font, size, gray);
  }

  rule(y: number, width = 0.5, gray = 0): void {
    this.cursor.operations.push({ kind: 'rule', x1: LEFT, y1: y, x2: RIGHT, y2: y, width, gray });
  }

  down(points: number): void {
    this.cursor.y -= points;
  }

  /** Starts a new page when `height` points do not fit on this one. */
  ensure(height: number): void {
    if (this.cursor.y - height < BOTTOM) this.newPage(false);
  }

  private newPage(first: boolean): void {
    const operations: PdfOperation[] = [];
    this.pages.push(operations);
    this.cursor = { operations, y: TOP };
    if (!first) {
      this.text(LEFT, this.y - 10, `${this.doc.title} ${this.doc.number} (continued)`, 'bold', 10);
      this.down(28);
      this.tableHeader();
    }
  }

  tableHeader(): void {
    const y = this.y - 9;
    this.text(NUMBER_X, y, '#', 'bold', 8, MUTED);
    this.text(DESCRIPTION_X, y, 'DESCRIPTION', 'bold', 8, MUTED);
    this.textRight(QUANTITY_RIGHT, y, 'QUANTITY', 'bold', 8, MUTED);
    this.textRight(AMOUNT_RIGHT, y, `AMOUNT (${this.doc.currency})`, 'bold', 8, MUTED);
    this.down(14);
    this.rule(this.y, 0.8);
    this.down(4);
  }
}

/** The lines one invoice line takes: its wrapped description, its period, and its wrapped breakdown rows. */
function lineBlock(line: InvoiceDocument['lines'][number]) {
  const description = wrapText(line.description, 'regular', 10, DESCRIPTION_WIDTH);
  const breakdown = line.breakdown.flatMap((row) => wrapText(`${row.label}: ${row.value}`, 'regular', 8, BREAKDOWN_WIDTH));
  const height = 6 + description.length * 13 + 11 + breakdown.length * 10.5 + 4;
  return { description, breakdown, height };
}

function header(layout: Layout, doc: InvoiceDocument): void {
  layout.text(LEFT, layout.y - 10, doc.issuer, 'bold', 11);
  layout.text(LEFT, layout.y - 40, doc.title, 'bold', 22);
  const meta: [string, string][] = [
    ['Number', doc.number],
    ['Status', doc.status],
    ...(doc.issuedAt ? ([['Issued', doc.issuedAt]] as [string, string][]) : []),
    ['Period', doc.period],
    ['Currency', doc.currency],
  ];
  layout.down(62);
  for (const [label, value] of meta) {
    layout.text(LEFT, layout.y, label, 'regular', 9, MUTED);
    layout.text(LEFT + 62, layout.y, value, 'regular', 9);
    layout.down(12);
  }
  layout.down(2);
  layout.rule(layout.y, 1.2);
  layout.down(20);

  layout.text(LEFT, layout.y, 'BILL TO', 'bold', 8, MUTED);
  layout.down(13);
  for (const row of wrapText(doc.customer.name, 'bold', 10, RIGHT - LEFT)) {
    layout.text(LEFT, layout.y, row, 'bold', 10);
    layout.down(12);
  }
  const contact = [`Customer ${doc.customer.externalId}`, ...(doc.customer.email ? [doc.customer.email] : [])];
  for (const row of contact.flatMap((value) => wrapText(value, 'regular', 9, RIGHT - LEFT))) {
    layout.text(LEFT, layout.y, row, 'regular', 9);
    layout.down(11);
  }
  layout.down(8);

  for (const note of doc.notes) {
    for (const row of wrapText(note, 'regular', 9, RIGHT - LEFT)) {
      layout.ensure(12);
      layout.text(LEFT, layout.y, row, 'regular', 9, 0.2);
      layout.down(12);
    }
  }
  if (doc.notes.length) layout.down(8);
}

/** Lays the document out into pages of text and rules. */
export function layoutInvoicePdf(doc: InvoiceDocument): PdfPage[] {
  const layout = new Layout(doc);
  header(layout, doc);
  layout.tableHeader();

  for (const line of doc.lines) {
    const block = lineBlock(line);
    // Keep a line with its breakdown; a block taller than a page starts on a fresh page and flows on.
    layout.ensure(Math.min(block.height, TOP - BOTTOM - 60));
    layout.down(6);
    const first = layout.y - 9;
    layout.text(NUMBER_X, first, String(line.number), 'regular', 10, MUTED);
    layout.textRight(QUANTITY_RIGHT, first, line.quantity, 'regular', 10);
    layout.textRight(AMOUNT_RIGHT, first, line.amount, 'regular', 10);
    for (const row of block.description) {
      layout.ensure(13);
      layout.text(DESCRIPTION_X, layout.y - 9, row, 'regular', 10);
      layout.down(13);
    }
    layout.ensure(11);
    layout.text(DESCRIPTION_X, layout.y - 7, line.period, 'regular', 8, MUTED);
    layout.down(11);
    for (const row of block.breakdown) {
      layout.ensure(10.5);
      layout.text(BREAKDOWN_X, layout.y - 7, row, 'regular', 8, MUTED);
      layout.down(10.5);
    }
    layout.down(4);
    layout.rule(layout.y, 0.3, 0.75);
  }

  layout.ensure(40);
  layout.down(8);
  layout.rule(layout.y, 1.2);
  layout.down(18);
  layout.text(DESCRIPTION_X, layout.y, 'Total', 'bold', 12);
  layout.textRight(AMOUNT_RIGHT, layout.y, `${doc.total} ${doc.currency}`, 'bold', 12);

  const count = layout.pages.length;
  return layout.pages.map((operations, index) => {
    const footer = `${doc.title} ${doc.number} · page ${index + 1} of ${count}`;
    const x = (A4.width - textWidth(footer, 'regular', 8)) / 2;
    return { operations: [...operations, { kind: 'text', x, y: 32, text: footer, font: 'regular', size: 8, gray: MUTED }] };
  });
}

/** The document as PDF bytes. */
export function renderInvoicePdf(doc: InvoiceDocument, options: { createdAt?: Date } = {}): Buffer {
  return writePdf(layoutInvoicePdf(doc), {
    title: `${doc.title} ${doc.number}`,
    author: doc.issuer,
    subject: `${doc.title} for ${doc.customer.name}, ${doc.period}`,
    createdAt: options.createdAt,
  });
}
