/**
 * A small PDF 1.4 writer with no dependencies: pages of positioned text in the standard Helvetica and
 * Helvetica-Bold fonts (never embedded: every PDF reader has them) and straight rules. Enough for invoices.
 *
 * Text is encoded in WinAnsiEncoding (Latin-1 plus typographic quotes, dashes, the euro sign, ...); characters
 * outside it are transliterated where there is an obvious ASCII form and become "?" otherwise. Widths come from
 * the fonts' AFM metrics, so right-aligned figures line up and long text wraps where it should.
 *
 * The file is plain 7-bit text after its binary-marker comment (string bytes above 126 are octal escapes), with
 * uncompressed content streams and a cross-reference table whose offsets are the byte positions of the objects.
 * Output is deterministic: the same pages and info give the same bytes.
 */

export type PdfFont = 'regular' | 'bold';

export interface PdfText {
  readonly kind: 'text';
  readonly x: number;
  /** Baseline, in points from the bottom of the page. */
  readonly y: number;
  readonly text: string;
  readonly font: PdfFont;
  readonly size: number;
  /** 0 is black, 1 white. */
  readonly gray?: number;
}

export interface PdfRule {
  readonly kind: 'rule';
  readonly x1: number;
  readonly y1: number;
  readonly x2: number;
  readonly y2: number;
  readonly width: number;
  readonly gray?: number;
}

export type PdfOperation = PdfText | PdfRule;

export interface PdfPage {
  readonly operations: readonly PdfOperation[];
}

export interface PdfInfo {
  readonly title?: string;
  readonly author?: string;
  readonly subject?: string;
  /** Written as /CreationDate; omitted when absent (so output stays deterministic). */
  readonly createdAt?: Date;
}

/** A4 in points. */
export const A4 = { width: 595.28, height: 841.89 } as const;

// ---------------------------------------------------------------------------------------------------------------
// WinAnsiEncoding and the fonts' widths (Adobe's AFM files for Helvetica and Helvetica-Bold, 1/1000 em).

const UNICODE_TO_WINANSI: Readonly<Record<number, number>> = {
  0x20ac: 128, 0x201a: 130, 0x0192: 131, 0x201e: 132, 0x2026: 133, 0x2020: 134, 0x2021: 135, 0x02c6: 136,
  0x2030: 137, 0x0160: 138, 0x2039: 139, 0x0152: 140, 0x017d: 142, 0x2018: 145, 0x2019: 146, 0x201c: 147,
  0x201d: 148, 0x2022: 149, 0x2013: 150, 0x2014: 151, 0x02dc: 152, 0x2122: 153, 0x0161: 154, 0x203a: 155,
  0x0153: 156, 0x017e: 158, 0x0178: 159,
};

/** Characters with no WinAnsi code but an obvious plain form. */
const TRANSLITERATIONS: Readonly<Record<string, string>> = {
  '\u2192': '->', '\u2190': '<-', '\u2264': '<=', '\u2265': '>=', '\u2212': '-', '\u2010': '-', '\u2011': '-',
  '\u2012': '-', '\u2015': '-', '\u2032': "'", '\u2033': '"', '\u00a0': ' ', '\u2009': ' ', '\u202f': ' ', '\u2007': ' ',
};

// Codes 32..126, then 160..255, per font.
const ASCII_REGULAR = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556,
  556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
  667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556,
  556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];
const ASCII_BOLD = [
  278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556,
  556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
  667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611,
  611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
];
const LATIN1_REGULAR = [
  278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333, 556, 537, 278,
  333, 333, 365, 556, 834, 834, 834, 611, 667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
  722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, 556, 556, 556, 556, 556, 556, 889, 500,
  556, 556, 556, 556, 278, 278, 278, 278, 556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];
const LATIN1_BOLD = [
  278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, 400, 584, 333, 333, 333, 611, 556, 278,
  333, 333, 365, 556, 834, 834, 834, 611, 722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
  722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, 556, 556, 556, 556, 556, 556, 889, 556,
  556, 556, 556, 556, 278, 278, 278, 278, 611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];
// 128..159 (undefined codes 129, 141, 143, 144, 157 never occur: nothing maps to them).
const WINDOWS_REGULAR = [556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, 0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667];
const WINDOWS_BOLD = [556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, 0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667];

function widthOf(code: number, font: PdfFont): number {
  const bold = font === 'bold';
  if (code >= 32 && code <= 126) return (bold ? ASCII_BOLD : ASCII_REGULAR)[code - 32];
  if (code >= 160 && code <= 255) return (bold ? LATIN1_BOLD : LATIN1_REGULAR)[code - 160];
  if (code >= 128 && code <= 159) return (bold ? WINDOWS_BOLD : WINDOWS_REGULAR)[code - 128];
  return 0;
}

/**
 * The text as WinAnsi codes, one char per byte (char codes 0..255). Control characters become spaces; characters
 * the encoding lacks are transliterated or become "?".
 */
export function toWinAnsi(value: string): string {
  let out = '';
  for (const char of value.normalize('NFC')) {
    const code = char.codePointAt(0)!;
    if (code < 32 || code === 127 || (code >= 128 && code < 160)) out += ' ';
    else if (code <= 126 || (code >= 160 && code <= 255)) out += char;
    else if (UNICODE_TO_WINANSI[code] !== undefined) out += String.fromCharCode(UNICODE_TO_WINANSI[code]);
    else if (TRANSLITERATIONS[char] !== undefined) out += TRANSLITERATIONS[char];
    else out += '?';
  }
  return out;
}

/** The width of text in points, as a reader lays it out. */
export function textWidth(value: string, font: PdfFont, size: number): number {
  let units = 0;
  for (const char of toWinAnsi(value)) units += widthOf(char.charCodeAt(0), font);
  return (units * size) / 1000;
}

/**
 * Lines of at most maxWidth points, broken at spaces; a word longer than a line is broken where it must be.
 * Empty text gives one empty line.
 */
export function wrapText(value: string, font: PdfFont, size: number, maxWidth: number): string[] {
  const lines: string[] = [];
  let current = '';
  const push = (): void => {
    lines.push(current);
    current = '';
  };
  for (const word of value.split(/\s+/).filter(Boolean)) {
    const candidate = current ? `${current} ${word}` : word;
    if (textWidth(candidate, font, size) <= maxWidth) {
      current = candidate;
      continue;
    }
    if (current) push();
    let rest = word;
    while (textWidth(rest, font, size) > maxWidth) {
      let cut = 1;
      while (cut < rest.length && textWidth(rest.slice(0, cut + 1), font, size) <= maxWidth) cut += 1;
      lines.push(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    current = rest;
  }
  if (current || lines.length === 0) push();
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// Serialization.

/** A PDF literal string of WinAnsi text: parentheses and backslashes escaped, bytes outside printable ASCII octal. */
export function pdfString(value: string): string {
  let out = '(';
  for (const char of toWinAnsi(value)) {
    const code = char.charCodeAt(0);
    if (char === '(' || char === ')' || char === '\\') out += `\\${char}`;
    else if (code < 32 || code > 126) out += `\\${code.toString(8).padStart(3, '0')}`;
    else out += char;
  }
  return `${out})`;
}

/** A text string for the document information dictionary: UTF-16BE with a byte-order mark, so any text survives. */
function infoString(value: string): string {
  let hex = 'FEFF';
  for (let i = 0; i < value.length; i += 1) hex += value.charCodeAt(i).toString(16).padStart(4, '0').toUpperCase();
  return `<${hex}>`;
}

function pdfDate(value: Date): string {
  const iso = value.toISOString();
  return `(D:${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z)`;
}

/** Coordinates with at most two decimals and no trailing zeros. */
const num = (value: number): string => String(Math.round(value * 100) / 100);

function contentStream(page: PdfPage): string {
  const out: string[] = [];
  for (const op of page.operations) {
    if (op.kind === 'text') {
      out.push(`BT /${op.font === 'bold' ? 'F2' : 'F1'} ${num(op.size)} Tf ${num(op.gray ?? 0)} g ${num(op.x)} ${num(op.y)} Td ${pdfString(op.text)} Tj ET`);
    } else {
      out.push(`${num(op.gray ?? 0)} G ${num(op.width)} w ${num(op.x1)} ${num(op.y1)} m ${num(op.x2)} ${num(op.y2)} l S`);
    }
  }
  return out.join('\n');
}

/**
 * The PDF file. Objects: 1 catalog, 2 page tree, 3 and 4 the fonts, 5 the info dictionary, then a page and its
 * content stream per page. Every byte is ASCII but the marker comment, so string length is byte length.
 */
export function writePdf(pages: readonly PdfPage[], info: PdfInfo = {}, size: { width: number; height: number } = A4): Buffer {
  if (pages.length === 0) throw new Error('a PDF needs at least one page');
  const objects: string[] = [];
  const pageIds = pages.map((_, index) => 6 + index * 2);
  objects[1] = '<< /Type /Catalog /Pages 2 0 R >>';
  objects[2] = `<< /Type /Pages /Kids [${pageIds.map((id) => `${id} 0 R`).join(' ')}] /Count ${pages.length} >>`;
  objects[3] = '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>';
  objects[4] = '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>';
  const infoEntries = [
    info.title !== undefined ? `/Title ${infoString(info.title)}` : '',
    info.author !== undefined ? `/Author ${infoString(info.author)}` : '',
    info.subject !== undefined ? `/Subject ${infoString(info.subject)}` : '',
    `/Producer ${infoString('meterloop')}`,
    info.createdAt ? `/CreationDate ${pdfDate(info.createdAt)}` : '',
  ].filter(Boolean);
  objects[5] = `<< ${infoEntries.join(' ')} >>`;
  pages.forEach((page, index) => {
    const pageId = pageIds[index];
    const stream = contentStream(page);
    objects[pageId] =
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${num(size.width)} ${num(size.height)}] ` +
      `/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents ${pageId + 1} 0 R >>`;
    // The end-of-line before `endstream` is not part of the data, so not counted in /Length.
    objects[pageId + 1] = `<< /Length ${Buffer.byteLength(stream, 'latin1')} >>\nstream\n${stream}\nendstream`;
  });

  const header = Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1');
  const chunks: Buffer[] = [header];
  let offset = header.length;
  const offsets: number[] = [];
  for (let id = 1; id < objects.length; id += 1) {
    offsets[id] = offset;
    const chunk = Buffer.from(`${id} 0 obj\n${objects[id]}\nendobj\n`, 'latin1');
    chunks.push(chunk);
    offset += chunk.length;
  }
  const xrefOffset = offset;
  // Each entry is exactly 20 bytes: 10-digit offset, space, 5-digit generation, space, n/f, space, newline.
  const entries = ['0000000000 65535 f \n', ...offsets.slice(1).map((value) => `${String(value).padStart(10, '0')} 00000 n \n`)];
  const trailer =
    `xref\n0 ${objects.length}\n${entries.join('')}` +
    `trailer\n<< /Size ${objects.length} /Root 1 0 R /Info 5 0 R >>\nstartxref\n${xrefOffset}\n%%EOF\n`;
  chunks.push(Buffer.from(trailer, 'latin1'));
  return Buffer.concat(chunks);
}
