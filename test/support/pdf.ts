/**
 * Reading our PDFs back, for tests: a structural check of the file (header, every object where the cross-reference
 * table says it is, trailer, stream lengths, page tree, font resources) and the text each page shows, with where it
 * stands. Plus `pdftotext` from Debian's poppler-utils as an independent reader: .ci/run installs it; a developer
 * without it is told how to get it, and in CI (CI set) its absence fails the test.
 *
 * The reader knows the subset of PDF our documents use (pdfkit's output: Helvetica text in WinAnsiEncoding drawn
 * with TJ, content streams plain or Flate-compressed); anything else is reported as invalid rather than guessed at.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inflateSync } from 'node:zlib';

/** One piece of text as drawn: x and y are its baseline's start, in points from the page's bottom left. */
export interface PdfTextRun {
  readonly text: string;
  readonly x: number;
  readonly y: number;
}

export interface InspectedPdf {
  readonly version: string;
  readonly objectCount: number;
  readonly pageCount: number;
  /** The strings each page shows, one per text object, in drawing order. */
  readonly pages: readonly (readonly string[])[];
  /** The same strings with their positions. */
  readonly runs: readonly (readonly PdfTextRun[])[];
  /** All pages' strings joined with single spaces: a description wrapped over lines reads as one phrase. */
  readonly text: string;
  /** The document information dictionary, each entry resolved to its PDF value (`(D:20261101000005Z)`, ...). */
  readonly info: Readonly<Record<string, string>>;
}

const WINANSI_HIGH: Readonly<Record<number, string>> = {
  128: '€', 130: '‚', 131: 'ƒ', 132: '„', 133: '…', 134: '†', 135: '‡', 136: 'ˆ', 137: '‰', 138: 'Š', 139: '‹', 140: 'Œ',
  142: 'Ž', 145: '‘', 146: '’', 147: '“', 148: '”', 149: '•', 150: '–', 151: '—', 152: '˜', 153: '™', 154: 'š', 155: '›',
  156: 'œ', 158: 'ž', 159: 'Ÿ',
};

function fail(message: string): never {
  throw new Error(`invalid PDF: ${message}`);
}

/** A TJ operand's hex strings (one byte per glyph, WinAnsi) as text; the numbers between them are kerning. */
function decodeTextArray(operand: string): string {
  let out = '';
  for (const [, hex] of operand.matchAll(/<([0-9a-fA-F]*)>/g)) {
    if (hex.length % 2 !== 0) fail(`odd-length hex string <${hex}>`);
    for (let i = 0; i < hex.length; i += 2) {
      const code = parseInt(hex.slice(i, i + 2), 16);
      out += code >= 128 && code < 160 ? (WINANSI_HIGH[code] ?? fail(`code ${code} is undefined in WinAnsi`)) : String.fromCharCode(code);
    }
  }
  return out;
}

/** The text objects of a content stream: the Tm position and the TJ strings of each BT ... ET. */
function textRuns(content: string): PdfTextRun[] {
  const runs: PdfTextRun[] = [];
  for (const [, body] of content.matchAll(/\nBT\n([\s\S]*?)\nET\n/g)) {
    const at = /^1 0 0 1 (-?[\d.]+) (-?[\d.]+) Tm$/m.exec(body) ?? fail(`a text object without a Tm position: ${body.slice(0, 80)}`);
    const text = [...body.matchAll(/^\[(.*)\] TJ$/gm)].map((m) => decodeTextArray(m[1])).join('');
    runs.push({ text, x: Number(at[1]), y: Number(at[2]) });
  }
  return runs;
}

/** Checks the file's structure byte by byte and reads its text; throws naming the first problem. */
export function inspectPdf(pdf: Buffer): InspectedPdf {
  const file = pdf.toString('latin1');
  const version = /^%PDF-(\d\.\d)\n/.exec(file)?.[1] ?? fail('no %PDF-x.y header');
  const startxref = /\nstartxref\n(\d+)\n%%EOF\n$/.exec(file) ?? fail('no startxref before a final %%EOF');
  const xrefOffset = Number(startxref[1]);
  const subsection = /^xref\n0 (\d+)\n/.exec(file.slice(xrefOffset)) ?? fail(`startxref ${xrefOffset} does not point at an xref table`);
  const size = Number(subsection[1]);
  const entriesStart = xrefOffset + subsection[0].length;
  const objects = new Map<number, { dictionary: string; stream?: Buffer }>();
  for (let id = 0; id < size; id += 1) {
    const entry = file.slice(entriesStart + id * 20, entriesStart + (id + 1) * 20);
    const parsed = /^(\d{10}) (\d{5}) ([nf]) \n$/.exec(entry) ?? fail(`xref entry ${id} is not 20 bytes of "oooooooooo ggggg n \\n": ${JSON.stringify(entry)}`);
    if (id === 0) {
      if (parsed[3] !== 'f' || parsed[2] !== '65535') fail('xref entry 0 must be the free-list head');
      continue;
    }
    const offset = Number(parsed[1]);
    const header = `${id} 0 obj\n`;
    if (file.slice(offset, offset + header.length) !== header) fail(`object ${id} is not at offset ${offset}`);
    const start = offset + header.length;
    const streamAt = /^(<<[\s\S]*?>>)\nstream\n/.exec(file.slice(start, start + 4096));
    if (streamAt && !file.slice(start, start + streamAt[1].length).includes('endobj')) {
      const length = Number(/\/Length (\d+)/.exec(streamAt[1])?.[1] ?? fail(`stream ${id} has no /Length`));
      const dataStart = start + streamAt[0].length;
      if (file.slice(dataStart + length, dataStart + length + '\nendstream\nendobj\n'.length) !== '\nendstream\nendobj\n') {
        fail(`stream ${id}: /Length ${length} does not end where endstream begins`);
      }
      objects.set(id, { dictionary: streamAt[1], stream: pdf.subarray(dataStart, dataStart + length) });
    } else {
      const end = file.indexOf('\nendobj\n', start);
      if (end < 0) fail(`object ${id} has no endobj`);
      objects.set(id, { dictionary: file.slice(start, end) });
    }
  }
  const trailer = file.slice(entriesStart + size * 20);
  if (!trailer.startsWith('trailer\n')) fail('no trailer after the xref entries');
  if (Number(/\/Size (\d+)/.exec(trailer)?.[1]) !== size) fail('trailer /Size does not match the xref table');
  const body = (id: number, what: string): string => objects.get(id)?.dictionary ?? fail(`${what} (object ${id}) is missing`);
  const ref = (dictionary: string, key: string, what: string): number => Number(new RegExp(`/${key} (\\d+) 0 R`).exec(dictionary)?.[1] ?? fail(`${what} has no /${key}`));

  const root = body(ref(trailer, 'Root', 'the trailer'), 'the catalog');
  if (!/\/Type \/Catalog\b/.test(root)) fail('the /Root object is not a catalog');
  const pagesId = ref(root, 'Pages', 'the catalog');
  const tree = body(pagesId, 'the page tree');
  const kids = [...(/\/Kids \[([^\]]*)\]/.exec(tree)?.[1] ?? fail('the page tree has no /Kids')).matchAll(/(\d+) 0 R/g)].map((m) => Number(m[1]));
  const count = Number(/\/Count (\d+)/.exec(tree)?.[1] ?? fail('the page tree has no /Count'));
  if (count !== kids.length) fail(`/Count ${count} but ${kids.length} kids`);

  const runs = kids.map((kid) => {
    const page = body(kid, 'a page');
    if (!/\/Type \/Page\b/.test(page) || !page.includes(`/Parent ${pagesId} 0 R`)) fail(`object ${kid} is not a page of the tree`);
    if (!/\/MediaBox \[0 0 [\d.]+ [\d.]+\]/.test(page)) fail(`page ${kid} has no MediaBox`);
    const resourcesRef = /\/Resources (\d+) 0 R/.exec(page);
    const resources = resourcesRef ? body(Number(resourcesRef[1]), 'page resources') : page;
    const contentsId = ref(page, 'Contents', `page ${kid}`);
    const contents = objects.get(contentsId) ?? fail(`content stream ${contentsId} is missing`);
    if (!contents.stream) fail(`object ${contentsId} is not a stream`);
    const compressed = /\/Filter \/FlateDecode\b/.test(contents.dictionary);
    const content = `\n${(compressed ? inflateSync(contents.stream) : contents.stream).toString('latin1')}\n`;
    for (const font of content.matchAll(/\/(F\d+) [\d.]+ Tf/g)) {
      const fontRef = new RegExp(`/${font[1]} (\\d+) 0 R`).exec(resources) ?? fail(`page ${kid} uses font ${font[1]} without a resource`);
      if (!/\/BaseFont \/Helvetica(-Bold)?\b/.test(body(Number(fontRef[1]), `font ${font[1]}`))) fail(`font ${font[1]} is not Helvetica`);
    }
    return textRuns(content);
  });
  const infoDictionary = body(ref(trailer, 'Info', 'the trailer'), 'the info dictionary');
  const info = Object.fromEntries(
    [...infoDictionary.matchAll(/\/(\w+) (?:(\d+) 0 R|(\([^)]*\)|<[^>]*>))/g)].map((m) => [m[1], m[3] ?? body(Number(m[2]), `info /${m[1]}`)]),
  );
  const pages = runs.map((page) => page.map((run) => run.text));
  return {
    version,
    objectCount: size - 1,
    pageCount: count,
    pages,
    runs,
    text: pages.flat().join(' ').replace(/\s+/g, ' '),
    info,
  };
}

/** Where pdftotext is, or undefined. */
export function findPdftotext(): string | undefined {
  for (const candidate of ['/usr/bin/pdftotext', '/usr/local/bin/pdftotext', '/opt/homebrew/bin/pdftotext']) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export const PDFTOTEXT_MISSING =
  'pdftotext (poppler-utils) is not installed, so PDFs were checked by our own reader only. ' +
  'Install it with `apt-get install -y poppler-utils` (Debian/Ubuntu) or `brew install poppler` (macOS); .ci/run installs it in CI.';

/**
 * The text poppler reads from the PDF (whitespace collapsed), or undefined when pdftotext is missing outside CI.
 * In CI a missing pdftotext is an error: the CI setup installs it.
 */
export function pdftotext(pdf: Buffer): string | undefined {
  const binary = findPdftotext();
  if (!binary) {
    if (process.env.CI) throw new Error(`${PDFTOTEXT_MISSING} (CI is set, so this fails)`);
    console.warn(PDFTOTEXT_MISSING);
    return undefined;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meterloop-pdf-'));
  try {
    const file = path.join(dir, 'document.pdf');
    writeFileSync(file, pdf);
    // Without -layout: text in reading order, one phrase per run, which is what the assertions look for.
    const run = spawnSync(binary, ['-enc', 'UTF-8', file, '-'], { encoding: 'utf8' });
    // poppler repairs broken files quietly except for a "Syntax Error"/"Internal Error" line: those fail the test.
    if (run.status !== 0 || /error/i.test(run.stderr)) throw new Error(`pdftotext could not read the PDF (exit ${run.status}): ${run.stderr}`);
    return run.stdout.replace(/\s+/g, ' ');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
