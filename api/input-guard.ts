/**
 * Checks every request gets before a handler sees it, so hostile input ends as a 4xx problem, never a 5xx:
 * JSON bodies only (415 otherwise), nesting at most MAX_DEPTH deep (deeper input overflows recursive code and
 * Postgres' jsonb parser), no NUL characters and no lone UTF-16 surrogates anywhere (Postgres text and jsonb cannot
 * hold them), and no "__proto__" keys (prototype pollution).
 */
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ApiProblem, FieldError } from './problem';

export const MAX_DEPTH = 32;

function hasBody(headers: Record<string, string | string[] | undefined>): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

/** Before body parsing: a request with a body must say it is JSON. */
export const requireJsonBodies: RequestHandler = (req, _res, next) => {
  if (!hasBody(req.headers)) return next();
  if (req.is(['application/json', 'application/*+json'])) return next();
  return next(new ApiProblem('unsupported_media_type', `request bodies must be application/json, not ${req.headers['content-type'] ?? 'unspecified'}`));
};

/**
 * What a string must not hold: NUL, which Postgres text and jsonb refuse; a lone UTF-16 surrogate ("\ud800" in JSON),
 * which has no UTF-8 form: jsonb refuses it (a 500) and text stores U+FFFD in its place, so two event ids differing
 * only there were stored as one and the second event was counted a duplicate, never billed.
 */
function textProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'NUL characters';
  if (!(text as string & { isWellFormed(): boolean }).isWellFormed()) return 'lone UTF-16 surrogates (not well-formed Unicode)';
  return undefined;
}

/** The first problem in a parsed JSON value (walked iteratively: depth is what we are checking). */
export function inspectJson(value: unknown, root: string): FieldError | undefined {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: root, depth: 0 }];
  while (stack.length) {
    const item = stack.pop()!;
    if (typeof item.value === 'string') {
      const problem = textProblem(item.value);
      if (problem) return { path: item.path, message: `must not contain ${problem}` };
    } else if (item.value !== null && typeof item.value === 'object') {
      if (item.depth >= MAX_DEPTH) return { path: item.path, message: `nested deeper than ${MAX_DEPTH} levels` };
      for (const [key, child] of Object.entries(item.value)) {
        const keyProblem = textProblem(key);
        if (keyProblem) return { path: item.path, message: `keys must not contain ${keyProblem}` };
        // JSON.parse keeps "__proto__" as a plain key; Object.assign and friends would turn it into a prototype.
        if (key === '__proto__') return { path: item.path, message: 'keys must not be "__proto__"' };
        stack.push({ value: child, path: item.path === root && root === '(body)' ? key : `${item.path}.${key}`, depth: item.depth + 1 });
      }
    }
  }
  return undefined;
}

/** After body parsing: the body and the query string hold no NULs or lone surrogates and are not absurdly deep. */
export const inspectParsedInput: RequestHandler = (req, _res, next) => {
  const problem = inspectJson(req.body, '(body)') ?? inspectJson(req.query, 'query');
  if (problem) return next(new ApiProblem('validation_failed', `invalid input at ${problem.path}: ${problem.message}`, [problem]));
  return next();
};

/**
 * Before the problem handler: client errors raised by Express and body-parser (an unsupported charset or content
 * encoding, a body that does not inflate, a path that does not decode) become problems with a code, not a 500.
 */
export const translateClientErrors: ErrorRequestHandler = (error: unknown, _req, _res, next) => {
  const http = error as { status?: unknown; type?: unknown; message?: unknown };
  if (error instanceof ApiProblem || typeof http?.status !== 'number' || http.status < 400 || http.status >= 500) return next(error);
  if (http.type === 'entity.parse.failed' || http.type === 'entity.too.large') return next(error); // problemHandler knows these
  if (http.status === 415) return next(new ApiProblem('unsupported_media_type', String(http.message ?? 'unsupported media type')));
  if (http.status === 413) return next(new ApiProblem('payload_too_large', 'the request body is too large'));
  return next(new ApiProblem('malformed_request', `the request could not be read: ${String(http.message ?? http.status)}`));
};
