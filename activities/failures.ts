/**
 * Which activity failures are worth retrying. A failure the same input will cause again (a value Postgres cannot
 * hold, a rating error, data that breaks an invariant) becomes a non-retryable ApplicationFailure with a type, so
 * the workflow stops retrying and shows the subscription as needing attention instead of billing nothing forever.
 * Everything else (connection loss, timeouts, serialization conflicts, an unavailable gateway) stays retryable and
 * Temporal retries it with backoff.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { InvalidIntervalError } from '../domain/periods';
import { RatingError } from '../domain/rating';
import { SeatProrationError } from '../domain/seat-proration';

/** SQLSTATEs with a name ops recognise; the rest of a deterministic class keeps the class's name. */
const NAMED_SQLSTATES: Record<string, string> = {
  '22001': 'string_data_right_truncation',
  '22003': 'numeric_field_overflow',
  '22007': 'invalid_datetime_format',
  '22008': 'datetime_field_overflow',
  '22012': 'division_by_zero',
  '22P02': 'invalid_text_representation',
  '23502': 'not_null_violation',
  '23503': 'foreign_key_violation',
  '23514': 'check_violation',
  '54000': 'program_limit_exceeded',
};

/**
 * Integrity violations that mean "someone else wrote it first": the caller's retry finds the existing row, so
 * they are transient (unique and exclusion conflicts).
 */
const DUPLICATE_CONFLICTS = new Set(['23505', '23P01']);

/** The non-retryable type of a deterministic failure, or null when the failure may pass on a retry. */
export function deterministicFailureType(error: unknown): string | null {
  if (error instanceof RatingError) return error.code;
  if (error instanceof InvalidIntervalError) return 'invalid_interval';
  // A seat-like metric's events take its level below 0: the same events fail every retry.
  if (error instanceof SeatProrationError) return 'seat_level_negative';
  const sqlState = postgresSqlState(error);
  if (sqlState) {
    if (DUPLICATE_CONFLICTS.has(sqlState)) return null;
    if (sqlState.startsWith('22')) return NAMED_SQLSTATES[sqlState] ?? 'data_exception';
    if (sqlState.startsWith('23')) return NAMED_SQLSTATES[sqlState] ?? 'integrity_constraint_violation';
    // A value past a limit of Postgres itself (an index entry over 2704 bytes, a statement too complex): the same
    // input fails the same way. Left retryable, such an activity was retried for ever and billing stopped silently.
    if (sqlState.startsWith('54')) return NAMED_SQLSTATES[sqlState] ?? 'program_limit_exceeded';
    return null; // connection (08), serialization and deadlock (40), resources (53), shutdown (57)...
  }
  // Thrown by domain/ on a value it cannot read (a non-decimal string, an unknown currency): the data is wrong.
  if (error instanceof TypeError || error instanceof RangeError) return 'invalid_data';
  if (error instanceof Error && error.message.startsWith('[DecimalError]')) return 'invalid_data';
  return null;
}

/** The five-character SQLSTATE of an error raised by Postgres (node-postgres sets `code`); null otherwise. */
function postgresSqlState(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  const fromPostgres = typeof (error as { severity?: unknown } | null)?.severity === 'string';
  return fromPostgres && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/** An activity's error as it should leave the activity: deterministic ones as non-retryable, typed failures. */
export function classifyFailure(error: unknown): unknown {
  if (error instanceof ApplicationFailure) return error; // already decided by the activity itself
  const type = deterministicFailureType(error);
  if (!type) return error;
  const message = error instanceof Error ? error.message : String(error);
  return ApplicationFailure.create({ message, type, nonRetryable: true, cause: error instanceof Error ? error : undefined });
}

/**
 * `activities` with the failures of the named ones classified on the way out (the worker registers these).
 * Only activities whose callers handle a non-retryable failure are classified; the others keep retrying.
 */
export function classifyActivityFailures<T extends object>(activities: T, classifiedNames: ReadonlySet<string>): T {
  const classified: Record<string, unknown> = {};
  for (const [name, activity] of Object.entries(activities)) {
    classified[name] =
      typeof activity === 'function' && classifiedNames.has(name)
        ? async (...args: unknown[]) => {
            try {
              return await (activity as (...a: unknown[]) => Promise<unknown>)(...args);
            } catch (error) {
              throw classifyFailure(error);
            }
          }
        : activity;
  }
  return classified as T;
}
