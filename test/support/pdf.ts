/**
 * Reading our PDFs back, for tests: a strict structural check of the file (header, every object where the
 * cross-reference table says it is, trailer, stream lengths, page tree) and the text each page shows. Plus
 * `pdftotext` from Debian's poppler-utils as an independent reader: .ci/run installs it; a developer without it is
 * told how to get it, and in CI (CI set) its absence fails the test.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface InspectedPdf {
  readonly version: string;
  readonly objectCount: number;
  readonly pageCount: number;
  /** The strings each page shows (its `Tj` operands), decoded from WinAnsi, in drawing order. */
  readonly pages: readonly (readonly string[])[];
  /** All pages' strings joined with single spaces: a description wrapped over lines reads as one phrase. */
  readonly text: string;
  readonly info: string;
}

const WINANSI_HIGH: Readonly<Record<number, string>> = {
  128: '€', 130: '‚', 131: 'ƒ', 132: '„', 133: '…', 134: '†', 135: '‡', 136: 'ˆ', 137: '‰', 138: 'Š', 139: '‹', 140: 'Œ',
  142: 'Ž', 145: '‘', 146: '’', 147: '“', 148: '”', 149: '•', 150: '–', 151: '—', 152: '˜', 153: '™', 154: 'š', 155: '›',
  156: 'œ', 158: 'ž', 159: 'Ÿ',
};

function decodeLiteral(body: string): string {
  let out = '';
  for (let i = 0; i < body.length; i += 1) {
    const char = body[i];
    if (char !== '\\') {
      out += char;
      continue;
    }
    const next = body[i + 1];
    if (/[0-7]/.test(next)) {
      const digits = /^[0-7]{1,3}/.exec(body.slice(i + 1))![0];
      const code = parseInt(digits, 8);
      out += code >= 128 && code < 160 ? (WINANSI_HIGH[code] ?? '?') : String.fromCharCode(code);
      i += digits.length;
    } else {
      out += { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f' }[next] ?? next;
      i += 1;
    }
  }
  return out;
}

function fail(message: string): never {
  throw new Error(`invalid PDF: ${message}`);
}

/** Checks the file's structure byte by byte and reads its text; throws naming the first problem. */
export function inspectPdf(pdf: Buffer): InspectedPdf {
  const file = pdf.toString('latin1');
  const version = /^%PDF-(\d\.\d)\n/.exec(file)?.[1] ?? fail('no %PDF-x.y header');
  if (!file.endsWith('%%EOF\n')) fail('does not end with %%EOF');
  const startxref = /startxref\n(\d+)\n%%EOF\n$/.exec(file) ?? fail('no startxref before %%EOF');
  const xrefOffset = Number(startxref[1]);
  if (file.slice(xrefOffset, xrefOffset + 5) !== 'xref\n') fail(`startxref ${xrefOffset} does not point at the xref table`);
  const subsection = /^xref\n0 (\d+)\n/.exec(file.slice(xrefOffset)) ?? fail('no xref subsection header');
  const size = Number(subsection[1]);
  const entriesStart = xrefOffset + subsection[0].length;
  const bodies = new Map<number, string>();
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
    const end = file.indexOf('\nendobj\n', offset);
    if (end < 0) fail(`object ${id} has no endobj`);
    bodies.set(id, file.slice(offset + header.length, end));
  }
  const trailer = file.slice(entriesStart + size * 20);
  if (!trailer.startsWith('trailer\n')) fail('no trailer after the xref entries');
  if (Number(/\/Size (\d+)/.exec(trailer)?.[1]) !== size) fail('trailer /Size does not match the xref table');
  const rootId = Number(/\/Root (\d+) 0 R/.exec(trailer)?.[1] ?? fail('trailer has no /Root'));
  const infoId = Number(/\/Info (\d+) 0 R/.exec(trailer)?.[1] ?? fail('trailer has no /Info'));
  const root = bodies.get(rootId) ?? fail('the /Root object is missing');
  if (!root.includes('/Type /Catalog')) fail('the /Root object is not a catalog');
  const pagesId = Number(/\/Pages (\d+) 0 R/.exec(root)?.[1] ?? fail('the catalog has no /Pages'));
  const tree = bodies.get(pagesId) ?? fail('the page tree is missing');
  const kids = [...(/\/Kids \[([^\]]*)\]/.exec(tree)?.[1] ?? fail('the page tree has no /Kids')).matchAll(/(\d+) 0 R/g)].map((m) => Number(m[1]));
  const count = Number(/\/Count (\d+)/.exec(tree)?.[1] ?? fail('the page tree has no /Count'));
  if (count !== kids.length) fail(`/Count ${count} but ${kids.length} kids`);

  const pages = kids.map((kid) => {
    const page = bodies.get(kid) ?? fail(`page object ${kid} is missing`);
    if (!page.includes('/Type /Page ') || !page.includes(`/Parent ${pagesId} 0 R`)) fail(`object ${kid} is not a page of the tree`);
    if (!/\/MediaBox \[0 0 [\d.]+ [\d.]+\]/.test(page)) fail(`page ${kid} has no MediaBox`);
    const contentsId = Number(/\/Contents (\d+) 0 R/.exec(page)?.[1] ?? fail(`page ${kid} has no /Contents`));
    const stream = bodies.get(contentsId) ?? fail(`content stream ${contentsId} is missing`);
    const match = /^<< \/Length (\d+) >>\nstream\n/.exec(stream) ?? fail(`object ${contentsId} is not a stream with a /Length`);
    const length = Number(match[1]);
    const data = stream.slice(match[0].length);
    if (data.length !== length + '\nendstream'.length || !data.endsWith('\nendstream')) {
      fail(`stream ${contentsId}: /Length ${length} but ${data.length - '\nendstream'.length} bytes before endstream`);
    }
    const content = data.slice(0, length);
    for (const font of content.matchAll(/\/(F\d+) [\d.]+ Tf/g)) {
      if (!new RegExp(`/${font[1]} \\d+ 0 R`).test(page)) fail(`page ${kid} uses font ${font[1]} without a resource`);
    }
    return [...content.matchAll(/\(((?:\\[\s\S]|[^\\)])*)\) Tj/g)].map((m) => decodeLiteral(m[1]));
  });
  if (/[\x80-\xff]/.test(file.slice(file.indexOf('\n', 9) + 1))) fail('bytes above 127 after the binary marker');
  return {
    version,
    objectCount: size - 1,
    pageCount: count,
    pages,
    text: pages.flat().join(' ').replace(/\s+/g, ' '),
    info: bodies.get(infoId) ?? fail('the /Info object is missing'),
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
