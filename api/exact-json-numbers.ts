/**
 * JSON numbers that JSON.parse cannot keep as sent. It reads every number as a double: `1e400` becomes Infinity
 * (which JSON.stringify, and so the stored jsonb, turns into null), `1e-400` becomes 0, and a 20-digit id is
 * rounded to another integer. An ingestion body holding such a number stored a value other than the one sent:
 * a unique_count metric counted the event as absent, or two distinct ids as one. So the body's raw text is kept,
 * and any number that does not read back as sent is put in the parsed body as an InexactJsonNumber, which
 * validation refuses for the event that holds it (domain/usage-events.ts); the rest of the batch stays valid.
 */
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import Decimal from 'decimal.js';
import { InexactJsonNumber } from '../domain/usage-events';
import { ApiProblem } from './problem';

/** At most 15 significant digits: every such integer is a double exactly. The common case, decided without Decimal. */
const SHORT_INTEGER = /^-?(?:0|[1-9][0-9]{0,14})$/;

/** Whether the JSON number literal `text` reads as a double of exactly the value it writes. */
export function isExactJsonNumber(text: string): boolean {
  if (SHORT_INTEGER.test(text)) return true;
  const read = Number(text);
  if (!Number.isFinite(read)) return false;
  const shown = String(read);
  return shown === text || new Decimal(text).eq(new Decimal(shown));
}

/** Calls `visit` with the start and end of every number literal of a valid JSON text (strings skipped). */
function forEachNumberLiteral(text: string, visit: (start: number, end: number) => void): void {
  let i = 0;
  while (i < text.length) {
    const char = text.charCodeAt(i);
    if (char === 0x22 /* " */) {
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c /* \ */ ? 2 : 1;
      i++;
    } else if (char === 0x2d /* - */ || (char >= 0x30 && char <= 0x39)) {
      const start = i;
      i++;
      while (i < text.length && isNumberChar(text.charCodeAt(i))) i++;
      visit(start, i);
    } else {
      i++;
    }
  }
}

/** Digits, point, sign and exponent: what follows a number literal's first character (valid JSON only). */
function isNumberChar(char: number): boolean {
  return (char >= 0x30 && char <= 0x39) || char === 0x2e || char === 0x65 || char === 0x45 || char === 0x2b || char === 0x2d;
}

/**
 * The JSON text parsed with every number that would not read as sent replaced by an InexactJsonNumber, or
 * undefined when every number reads exactly (JSON.parse's own result then stands: the common case, one scan).
 */
export function parseKeepingInexactNumbers(text: string): unknown {
  const inexact: { start: number; end: number }[] = [];
  forEachNumberLiteral(text, (start, end) => {
    if (!isExactJsonNumber(text.slice(start, end))) inexact.push({ start, end });
  });
  if (inexact.length === 0) return undefined;
  // Each such literal becomes a one-key object under a key no client can guess, turned back by the reviver.
  const key = `inexact-number:${randomUUID()}`;
  let rewritten = '';
  let from = 0;
  for (const { start, end } of inexact) {
    rewritten += `${text.slice(from, start)}{${JSON.stringify(key)}:${JSON.stringify(text.slice(start, end))}}`;
    from = end;
  }
  rewritten += text.slice(from);
  return JSON.parse(rewritten, (_name, value: unknown) =>
    value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 1 && key in value
      ? new InexactJsonNumber((value as Record<string, string>)[key])
      : value,
  );
}

const RAW_BODY = Symbol('raw JSON body');

/** body-parser's `verify` hook: keeps the raw text of the body it is about to parse. */
export function keepRawJson(req: object, _res: unknown, buffer: Buffer, encoding: string): void {
  const charset = encoding || 'utf8';
  // body-parser takes JSON in UTF-8 or UTF-16/32; a charset Buffer cannot decode is left unmarked (JSON.parse's reading).
  if (!Buffer.isEncoding(charset)) return;
  // A byte order mark, which body-parser's decoding drops before JSON.parse.
  (req as Record<symbol, string>)[RAW_BODY] = buffer.toString(charset).replace(/^\uFEFF/, '');
}

/** After body-parser (with keepRawJson): the body again, with the numbers it could not keep as sent marked. */
export const markInexactJsonNumbers: RequestHandler = (req, _res, next) => {
  const raw = (req as unknown as Record<symbol, string | undefined>)[RAW_BODY];
  if (raw === undefined) return next();
  delete (req as unknown as Record<symbol, string | undefined>)[RAW_BODY];
  try {
    const marked = parseKeepingInexactNumbers(raw);
    if (marked !== undefined) req.body = marked;
    return next();
  } catch {
    // body-parser read this very text, so this is not expected: refuse rather than store numbers altered.
    return next(new ApiProblem('malformed_request', 'the request body could not be read exactly as JSON'));
  }
};
