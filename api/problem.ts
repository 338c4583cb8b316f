import { isGrpcServiceError, ServiceError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import type { ErrorRequestHandler, Response } from 'express';
import { STATUS_CODES, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ZodError } from 'zod';
import { CostTableMetricMismatch } from '../domain/cost-tables';
import { RatingError } from '../domain/rating';
import { SeatProrationError } from '../domain/seat-proration';
import { causeChain } from './cause-chain';
import { TemporalDeadlinePassed } from './temporal-deadline';

/**
 * Errors to API users are RFC 9457 `application/problem+json` with a stable snake_case `code`.
 * Every code maps to its HTTP status here, in one place.
 */
const STATUS_BY_CODE = {
  // Subscription lifecycle: rejections by the workflow's update validators (their message is the code).
  subscription_not_active: 409,
  // two of a customer's subscriptions would price one event type at once (store/metered-overlaps.ts)
  metered_usage_overlap: 409,
  same_plan: 409,
  no_scheduled_change: 409,
  retention_offer_pending: 409,
  no_retention_offer: 409,
  no_win_back_offer: 409,
  subscription_not_paused: 409,
  pause_until_in_past: 422,
  interval_change_needs_period_end: 422,
  // A billing step failed deterministically: nothing else takes effect until ops fix the data and retry it.
  subscription_needs_attention: 409,
  // A seat removal stored before the addition it removes: the level is below 0 until the missing change arrives.
  seat_level_negative: 409,
  // Stored usage rates to more than an amount holds (10^20): a plan's price and an event's value each within bounds.
  amount_out_of_range: 409,
  no_failed_step: 409,
  subscription_suspended: 409,
  // Paused: only a cancellation now takes effect (or resume first). Opening a period: pause after it is open.
  subscription_paused: 409,
  period_opening: 409,
  rerate_not_found: 404,
  rerate_not_awaiting_decision: 409,
  invoice_not_rerateable: 409,
  decision_reason_required: 422,
  validation_failed: 422,
  malformed_json: 400,
  payload_too_large: 413,
  not_found: 404,
  customer_not_found: 404,
  plan_not_found: 404,
  subscription_not_found: 404,
  invoice_not_found: 404,
  customer_already_exists: 409,
  plan_version_conflict: 409,
  currency_mismatch: 422,
  invalid_price: 422,
  // A charge's min_amount/max_amount/first_tier_fee_at_zero_usage do not fit it (docs/pricing.md "Charge options").
  invalid_charge_options: 422,
  metric_not_found: 422,
  metric_already_exists: 409,
  // A prorated_sum/prorated_latest metric (seats prorated in the period) cannot split by group_by yet.
  prorated_metric_not_groupable: 422,
  batch_rejected: 422,
  subscription_already_canceled: 409,
  invalid_cancel_timing: 422,
  idempotency_key_required: 400,
  workflow_unavailable: 503,
  internal_error: 500,
  // payments and refunds (issue 5)
  invoice_not_paid: 409,
  refund_exceeds_paid: 422,
  // a top-up invoice refunds only as much of the credit it bought as is still unspent (docs/wallets.md)
  refund_exceeds_unspent_credit: 422,
  idempotency_key_reused: 409,
  // authentication, hostile input, idempotency and health (issue 7)
  unauthenticated: 401,
  api_key_revoked: 401,
  api_key_expired: 401,
  forbidden: 403,
  api_key_not_found: 404,
  rate_limited: 429,
  unsupported_media_type: 415,
  malformed_request: 400,
  // answered by Node's HTTP parser before Express (answerClientErrors below): a request line or headers over
  // --max-http-header-size (16 KB; a long query string), a chunk extension too long, a request not sent in time
  request_header_fields_too_large: 431,
  chunk_extensions_too_large: 413,
  request_timeout: 408,
  // an Expect header other than 100-continue (Node answers it before Express: checkExpectation)
  expectation_failed: 417,
  idempotency_request_in_progress: 409,
  not_ready: 503,
  // bounds at the edge (issue 11): a charge its metric cannot feed
  charge_metric_mismatch: 422,
  // cost tables (issue 14): a table that does not fit its metric, one where two entries tie, one that would
  // replace a stored table (tables are never edited: costed invoices used them)
  invalid_cost_table: 422,
  ambiguous_cost_table: 422,
  cost_table_exists: 409,
  // dimensional pricing (issue 14): a price list rating could not resolve, or one where two prices tie
  invalid_dimensions: 422,
  ambiguous_dimension_prices: 422,
  // progressive billing (issue 14): thresholds that are not positive, increasing amounts of the plan's currency
  invalid_usage_thresholds: 422,
  // a dependency is down (issue 11): retry later, nothing was written
  database_unavailable: 503,
  temporal_unavailable: 503,
  // subscription import (issue 15): per-row codes of the import report
  duplicate_external_id: 422,
  period_not_aligned: 422,
  period_already_ended: 422,
  external_id_conflict: 409,
  // wallet top-ups and auto-recharge (issue 12): a purchase needs a card on file; a recharge needs both settings
  payment_method_missing: 422,
  recharge_settings_incomplete: 422,
} as const;

export type ProblemCode = keyof typeof STATUS_BY_CODE;

export function isProblemCode(value: string): value is ProblemCode {
  return Object.prototype.hasOwnProperty.call(STATUS_BY_CODE, value);
}

export interface FieldError {
  readonly path: string;
  readonly message: string;
}

export class ApiProblem extends Error {
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly errors?: readonly FieldError[],
    /** RFC 9457 extension members that name what the problem is about (snake_case, JSON values). */
    readonly extensions?: Readonly<Record<string, unknown>>,
  ) {
    super(detail);
    this.name = 'ApiProblem';
  }

  get status(): number {
    return STATUS_BY_CODE[this.code];
  }
}

/** Problems that a later retry can fix on its own: answered with Retry-After (seconds). */
const RETRY_AFTER_SECONDS: Partial<Record<ProblemCode, number>> = {
  workflow_unavailable: 5,
  database_unavailable: 5,
  temporal_unavailable: 5,
  // The period opens once its usage grace window ends (up to the plan's usage_grace_period).
  period_opening: 60,
  // Billing waits for ops to fix a failed step and retry it: refused until then, not for good. With Retry-After the
  // refusal is not stored under an Idempotency-Key (api/idempotency.ts), so the same request is made once it is fixed;
  // stored, it was replayed for 24 hours.
  subscription_needs_attention: 300,
};

/** The RFC 9457 document of a problem. */
function problemDocument(problem: ApiProblem): Record<string, unknown> {
  return {
    ...problem.extensions, // first: never over the standard members
    type: `https://meterloop.dev/problems/${problem.code}`,
    title: problem.code.replace(/_/g, ' '),
    status: problem.status,
    code: problem.code,
    detail: problem.detail,
    ...(problem.errors ? { errors: problem.errors } : {}),
  };
}

export function sendProblem(res: Response, problem: ApiProblem): void {
  const retryAfter = RETRY_AFTER_SECONDS[problem.code];
  if (retryAfter !== undefined && !res.hasHeader('Retry-After')) res.setHeader('Retry-After', String(retryAfter));
  res.status(problem.status).type('application/problem+json').json(problemDocument(problem));
}

/** The problem for an error Node's HTTP parser raised before there was a request (the codes Node itself maps). */
export function clientErrorProblem(error: { code?: unknown }): ApiProblem {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new ApiProblem('request_header_fields_too_large', 'the request line and headers may take at most 16 KB together; send long filters in fewer or shorter parameters');
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new ApiProblem('chunk_extensions_too_large', 'the chunked body carries chunk extensions that are too large');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ApiProblem('request_timeout', 'the request was not received in time');
    default:
      return new ApiProblem('malformed_request', 'the request is not valid HTTP/1.1 (request line, header or body framing)');
  }
}

/**
 * Errors Node's HTTP parser answers before Express sees a request (a URL or headers over 16 KB, a bad request line
 * or header, broken chunked framing, a request timeout) got Node's bare status line with no body: the one answer
 * of the API that was not application/problem+json with a code. Node lets a 'clientError' listener write the
 * response to the socket itself; this writes the same problem document Express would, then closes the connection
 * (the parser cannot go on after such an error).
 */
export function answerClientErrors(server: HttpServer): HttpServer {
  // Node answers an HTTP/1.1 request without Host with a bare 400 before any listener sees it; the server option
  // requireHostHeader (stored on the server as this property) hands it to the app, which refuses it as a problem.
  (server as HttpServer & { requireHostHeader?: boolean }).requireHostHeader = false;
  server.on('clientError', (error: Error & { code?: unknown }, socket: Duplex) => {
    // As Node's default: nothing to answer on a reset or closed socket, or after a response has begun on it.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const problem = clientErrorProblem(error);
    const body = JSON.stringify(problemDocument(problem));
    socket.end(
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? 'Error'}\r\n` +
        'Content-Type: application/problem+json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  });
  // An Expect header other than 100-continue: without a listener Node answers a bare 417 before Express.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const problem = new ApiProblem('expectation_failed', `the Expect header (${String(req.headers.expect).slice(0, 100)}) is not supported; only 100-continue is`);
    const body = JSON.stringify(problemDocument(problem));
    res.writeHead(problem.status, { 'Content-Type': 'application/problem+json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
    res.end(body);
  });
  return server;
}

export function fromZodError(error: ZodError): ApiProblem {
  const errors = error.issues.map((issue) => ({ path: issue.path.join('.') || '(body)', message: issue.message }));
  return new ApiProblem('validation_failed', `${errors.length} invalid field(s): ${errors.map((e) => e.path).join(', ')}`, errors);
}

/** Postgres SQLSTATEs of a server that is shutting down, starting up or unreachable (class 08: connection exception). */
const POSTGRES_UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006']);
/** Socket errors of a server that is not there (or went away mid-conversation). */
const SOCKET_UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN']);
const POSTGRES_UNAVAILABLE_MESSAGES = [
  /Connection terminated/i, // pg: the server closed the socket (crash, restart, network cut)
  /Connection ended unexpectedly/i,
  /Client has encountered a connection error and is not queryable/i,
  /Timeout acquiring a connection/i, // knex: the pool could not hand out a connection in time
];
/** gRPC status codes (numbers, as @grpc/grpc-js has them) of a Temporal server that cannot be reached in time. */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

/**
 * Which dependency an error says is down, if any: the one place that recognises "Postgres / Temporal cannot be
 * reached" (answered 503 with Retry-After) as opposed to a bug (500). Temporal is looked at first: its gRPC
 * errors also carry socket codes.
 */
export function unavailableDependencyOf(error: unknown): 'database_unavailable' | 'temporal_unavailable' | undefined {
  const chain = causeChain(error);
  for (const link of chain) {
    if (link instanceof WorkflowUpdateRPCTimeoutOrCancelledError || link instanceof TemporalDeadlinePassed) return 'temporal_unavailable';
    if (isGrpcServiceError(link) && (link.code === GRPC_UNAVAILABLE || link.code === GRPC_DEADLINE_EXCEEDED)) return 'temporal_unavailable';
  }
  if (chain.some((link) => link instanceof ServiceError)) return undefined; // another Temporal answer: not an outage
  // Duck-typed, not `instanceof Error`: socket errors come from Node's own realm (a different Error under jest's vm).
  for (const link of chain) {
    const { code, name, message } = (link ?? {}) as { code?: unknown; name?: unknown; message?: unknown };
    if (typeof message !== 'string') continue;
    if (typeof code === 'string' && (POSTGRES_UNAVAILABLE_STATES.has(code) || SOCKET_UNAVAILABLE_CODES.has(code))) return 'database_unavailable';
    if (name === 'KnexTimeoutError' && /acquiring a connection/i.test(message)) return 'database_unavailable';
    if (POSTGRES_UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message))) return 'database_unavailable';
  }
  return undefined;
}

/** The 503 problem for an error that says a dependency is down, or undefined for any other error. */
export function unavailableProblemOf(error: unknown): ApiProblem | undefined {
  const code = unavailableDependencyOf(error);
  if (code === 'database_unavailable') return new ApiProblem(code, 'the database cannot be reached right now; nothing was written, retry shortly');
  if (code === 'temporal_unavailable') {
    return new ApiProblem(code, 'the workflow service did not answer in time; retry shortly with the same Idempotency-Key (it is applied at most once)');
  }
  return undefined;
}

/** The last middleware: everything thrown becomes a problem document; unknown errors never leak internals. */
export const problemHandler: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
  if (error instanceof ApiProblem) return sendProblem(res, error);
  const unavailable = unavailableProblemOf(error);
  if (unavailable) return sendProblem(res, unavailable);
  if (error instanceof ZodError) return sendProblem(res, fromZodError(error));
  // A read that rates seats (usage preview, entitlements) before the missing change arrived: a state, not our bug.
  // A cost table on a metric no table can cost (store/cost-tables.ts refuses it before writing).
  if (error instanceof CostTableMetricMismatch) return sendProblem(res, new ApiProblem('invalid_cost_table', error.message, [{ path: 'metric', message: error.message }]));
  if (error instanceof SeatProrationError) return sendProblem(res, new ApiProblem('seat_level_negative', `the seat level cannot be rated yet: ${error.message}`));
  // A read that rates the usage so far (the usage preview, the usage page, a wallet's balance) where it rates past what
  // an amount holds: a state of the data (the invoice stops in needs_attention the same way), not a bare 500.
  if (error instanceof RatingError && error.code === 'amount_out_of_range') return sendProblem(res, new ApiProblem('amount_out_of_range', error.message));
  const bodyParserError = error as { type?: string };
  if (bodyParserError?.type === 'entity.parse.failed') return sendProblem(res, new ApiProblem('malformed_json', 'the request body is not valid JSON'));
  if (bodyParserError?.type === 'entity.too.large') return sendProblem(res, new ApiProblem('payload_too_large', 'the request body is too large'));
  console.error(JSON.stringify({ level: 'error', msg: 'unhandled API error', error: String((error as Error)?.stack ?? error) }));
  return sendProblem(res, new ApiProblem('internal_error', 'something went wrong on our side; it has been logged'));
};
