/**
 * Text for the PDF's standard fonts (Helvetica, never embedded: every reader has them). Those fonts speak
 * WinAnsiEncoding only, and pdfkit writes any other character as a broken code, so text is first narrowed to
 * what the encoding holds: an obvious plain form where there is one, "?" otherwise.
 */

/** Characters WinAnsi has outside Latin-1 (the euro sign, typographic quotes and dashes, ...). */
const WINANSI_EXTRAS = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');

/** Characters with no WinAnsi code but an obvious plain form. */
const TRANSLITERATIONS: Readonly<Record<string, string>> = {
  '\u2192': '->', '\u2190': '<-', '\u2264': '<=', '\u2265': '>=', '\u2212': '-', '\u2010': '-', '\u2011': '-',
  '\u2012': '-', '\u2015': '-', '\u2032': "'", '\u2033': '"', '\u2009': ' ', '\u202f': ' ', '\u2007': ' ',
};

/** The text with only characters the standard fonts can show; control characters become spaces. */
export function standardFontText(value: string): string {
  let out = '';
  for (const char of value.normalize('NFC')) {
    const code = char.codePointAt(0)!;
    if (code < 32 || code === 127 || (code >= 128 && code < 160)) out += ' ';
    else if (code <= 126 || (code >= 160 && code <= 255) || WINANSI_EXTRAS.has(char)) out += char;
    else if (TRANSLITERATIONS[char] !== undefined) out += TRANSLITERATIONS[char];
    else out += '?';
  }
  return out;
}

/** How wide a text is in points, in the font and size the caller has in mind. */
export type MeasureText = (value: string) => number;

/**
 * Lines of at most maxWidth points, broken at spaces; a word longer than a line is broken where it must be.
 * Empty text gives one empty line. (Our own: the layout needs the lines themselves to keep a block on one page.)
 */
export function wrapText(value: string, measure: MeasureText, maxWidth: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of value.split(/\s+/).filter(Boolean)) {
    const candidate = current ? `${current} ${word}` : word;
    if (measure(candidate) <= maxWidth) {
      current = candidate;
      continue;
    }
    if (current) lines.push(current);
    let rest = word;
    while (measure(rest) > maxWidth) {
      let cut = 1;
      while (cut < rest.length && measure(rest.slice(0, cut + 1)) <= maxWidth) cut += 1;
      lines.push(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    current = rest;
  }
  if (current || lines.length === 0) lines.push(current);
  return lines;
}
