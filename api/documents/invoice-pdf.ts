/**
 * An invoice or credit note as a PDF (A4, Helvetica), drawn with pdfkit: the same InvoiceDocument the HTML shows,
 * laid out top to bottom, continuing on as many pages as the lines need. Every page carries the table header and a
 * footer with the number and "page n of m"; a line and its breakdown are kept together on one page when they fit.
 *
 * The layout below works in points from the bottom of the page (y is a text baseline), as PDF itself does.
 */
import PDFDocument from 'pdfkit';
import type { InvoiceDocument } from './invoice-document';
import { standardFontText, wrapText } from './pdf-text';

type Font = 'regular' | 'bold';

const FONT_NAMES: Readonly<Record<Font, string>> = { regular: 'Helvetica', bold: 'Helvetica-Bold' };
/** A4 in points (pdfkit's 'A4'). */
const A4 = { width: 595.28, height: 841.89 } as const;
const LEFT = 50;
const RIGHT = A4.width - 50;
const TOP = A4.height - 50;
/** Content stops here; the footer sits below. */
const BOTTOM = 64;
const FOOTER_Y = 32;
const NUMBER_X = LEFT;
const DESCRIPTION_X = LEFT + 24;
const QUANTITY_RIGHT = RIGHT - 110;
const AMOUNT_RIGHT = RIGHT;
const DESCRIPTION_WIDTH = QUANTITY_RIGHT - 90 - DESCRIPTION_X;
const BREAKDOWN_X = DESCRIPTION_X + 12;
const BREAKDOWN_WIDTH = RIGHT - BREAKDOWN_X;
/** Gray levels: 0 is black, 1 white. */
const MUTED = 0.38;

/**
 * pdfkit derives the file's /ID from the document info, creation date included, and dates a document "now" unless
 * told otherwise. A fixed date keeps the bytes reproducible when the caller has no date to give (a draft); the date
 * itself is then left out of the file.
 */
const UNDATED = new Date(0);

const grayColor = (level: number): [number, number, number] => {
  const value = Math.round(level * 255);
  return [value, value, value];
};

class Layout {
  private y = TOP;

  constructor(
    private readonly pdf: PDFKit.PDFDocument,
    private readonly doc: InvoiceDocument,
  ) {}

  get cursor(): number {
    return this.y;
  }

  width(value: string, font: Font, size: number): number {
    return this.pdf.font(FONT_NAMES[font]).fontSize(size).widthOfString(standardFontText(value));
  }

  wrap(value: string, font: Font, size: number, maxWidth: number): string[] {
    return wrapText(standardFontText(value), (text) => this.width(text, font, size), maxWidth);
  }

  text(x: number, y: number, value: string, font: Font, size: number, gray = 0): void {
    this.pdf
      .font(FONT_NAMES[font])
      .fontSize(size)
      .fillColor(grayColor(gray))
      .text(standardFontText(value), x, A4.height - y, { lineBreak: false, baseline: 'alphabetic' });
  }

  textRight(right: number, y: number, value: string, font: Font, size: number, gray = 0): void {
    this.text(right - this.width(value, font, size), y, value, font, size, gray);
  }

  rule(y: number, width = 0.5, gray = 0): void {
    this.pdf.moveTo(LEFT, A4.height - y).lineTo(RIGHT, A4.height - y).lineWidth(width).strokeColor(grayColor(gray)).stroke();
  }

  down(points: number): void {
    this.y -= points;
  }

  /** Starts a new page when `height` points do not fit on this one. */
  ensure(height: number): void {
    if (this.y - height >= BOTTOM) return;
    this.pdf.addPage();
    this.y = TOP;
    this.text(LEFT, this.y - 10, `${this.doc.title} ${this.doc.number} (continued)`, 'bold', 10);
    this.down(28);
    this.tableHeader();
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

function header(layout: Layout, doc: InvoiceDocument): void {
  layout.text(LEFT, layout.cursor - 10, doc.issuer, 'bold', 11);
  layout.text(LEFT, layout.cursor - 40, doc.title, 'bold', 22);
  const meta: [string, string][] = [
    ['Number', doc.number],
    ['Status', doc.status],
    ...(doc.issuedAt ? ([['Issued', doc.issuedAt]] as [string, string][]) : []),
    ['Period', doc.period],
    ['Currency', doc.currency],
  ];
  layout.down(62);
  for (const [label, value] of meta) {
    layout.text(LEFT, layout.cursor, label, 'regular', 9, MUTED);
    layout.text(LEFT + 62, layout.cursor, value, 'regular', 9);
    layout.down(12);
  }
  layout.down(2);
  layout.rule(layout.cursor, 1.2);
  layout.down(20);

  layout.text(LEFT, layout.cursor, 'BILL TO', 'bold', 8, MUTED);
  layout.down(13);
  for (const row of layout.wrap(doc.customer.name, 'bold', 10, RIGHT - LEFT)) {
    layout.text(LEFT, layout.cursor, row, 'bold', 10);
    layout.down(12);
  }
  const contact = [`Customer ${doc.customer.externalId}`, ...(doc.customer.email ? [doc.customer.email] : [])];
  for (const row of contact.flatMap((value) => layout.wrap(value, 'regular', 9, RIGHT - LEFT))) {
    layout.text(LEFT, layout.cursor, row, 'regular', 9);
    layout.down(11);
  }
  layout.down(8);

  for (const note of doc.notes) {
    for (const row of layout.wrap(note, 'regular', 9, RIGHT - LEFT)) {
      layout.ensure(12);
      layout.text(LEFT, layout.cursor, row, 'regular', 9, 0.2);
      layout.down(12);
    }
  }
  if (doc.notes.length) layout.down(8);
}

function invoiceLine(layout: Layout, line: InvoiceDocument['lines'][number]): void {
  const description = layout.wrap(line.description, 'regular', 10, DESCRIPTION_WIDTH);
  const breakdown = line.breakdown.flatMap((row) => layout.wrap(`${row.label}: ${row.value}`, 'regular', 8, BREAKDOWN_WIDTH));
  const height = 6 + description.length * 13 + 11 + breakdown.length * 10.5 + 4;
  // Keep a line with its breakdown; a block taller than a page starts on a fresh page and flows on.
  layout.ensure(Math.min(height, TOP - BOTTOM - 60));
  layout.down(6);
  const first = layout.cursor - 9;
  layout.text(NUMBER_X, first, String(line.number), 'regular', 10, MUTED);
  layout.textRight(QUANTITY_RIGHT, first, line.quantity, 'regular', 10);
  layout.textRight(AMOUNT_RIGHT, first, line.amount, 'regular', 10);
  for (const row of description) {
    layout.ensure(13);
    layout.text(DESCRIPTION_X, layout.cursor - 9, row, 'regular', 10);
    layout.down(13);
  }
  layout.ensure(11);
  layout.text(DESCRIPTION_X, layout.cursor - 7, line.period, 'regular', 8, MUTED);
  layout.down(11);
  for (const row of breakdown) {
    layout.ensure(10.5);
    layout.text(BREAKDOWN_X, layout.cursor - 7, row, 'regular', 8, MUTED);
    layout.down(10.5);
  }
  layout.down(4);
  layout.rule(layout.cursor, 0.3, 0.75);
}

/** Reads a finished pdfkit document: it writes every byte synchronously on end(), so they are all buffered. */
function bytesOf(pdf: PDFKit.PDFDocument): Buffer {
  const chunks: Buffer[] = [];
  for (let chunk = pdf.read() as Buffer | null; chunk !== null; chunk = pdf.read() as Buffer | null) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The document as PDF bytes; the same document and options always give the same bytes. */
export function renderInvoicePdf(doc: InvoiceDocument, options: { createdAt?: Date } = {}): Buffer {
  const pdf = new PDFDocument({
    size: 'A4',
    margin: 0,
    // Pages stay open until the end, so each footer can say "page n of m".
    bufferPages: true,
    info: {
      Title: `${doc.title} ${doc.number}`,
      Author: doc.issuer,
      Subject: `${doc.title} for ${doc.customer.name}, ${doc.period}`,
      Producer: 'meterloop',
      Creator: 'meterloop',
      CreationDate: options.createdAt ?? UNDATED,
    },
  });
  // Undated: pdfkit writes the info entries it can enumerate, so a hidden date stays out of the file (and out of
  // the XMP metadata, which PDF 1.3, pdfkit's default version, does not carry).
  if (!options.createdAt) Object.defineProperty(pdf.info, 'CreationDate', { value: UNDATED, enumerable: false });

  const layout = new Layout(pdf, doc);
  header(layout, doc);
  layout.tableHeader();
  for (const line of doc.lines) invoiceLine(layout, line);
  layout.ensure(40);
  layout.down(8);
  layout.rule(layout.cursor, 1.2);
  layout.down(18);
  layout.text(DESCRIPTION_X, layout.cursor, 'Total', 'bold', 12);
  layout.textRight(AMOUNT_RIGHT, layout.cursor, `${doc.total} ${doc.currency}`, 'bold', 12);

  const { start, count } = pdf.bufferedPageRange();
  for (let index = 0; index < count; index += 1) {
    pdf.switchToPage(start + index);
    const footer = `${doc.title} ${doc.number} · page ${index + 1} of ${count}`;
    layout.text((A4.width - layout.width(footer, 'regular', 8)) / 2, FOOTER_Y, footer, 'regular', 8, MUTED);
  }
  pdf.end();
  return bytesOf(pdf);
}
