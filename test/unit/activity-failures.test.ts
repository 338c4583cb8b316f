/**
 * The activity failure classifier: what the same input will fail on again is non-retryable with a type; what a
 * retry may fix leaves the activity unchanged, so Temporal retries it with backoff.
 */
import { ApplicationFailure } from '@temporalio/common';
import { CLASSIFIED_ACTIVITIES, createActivities } from '../../activities';
import { classifyActivityFailures, classifyFailure } from '../../activities/failures';
import { InvalidIntervalError } from '../../domain/periods';
import { RatingError } from '../../domain/rating';

/** What node-postgres throws for an error Postgres reported: a message, a severity and the SQLSTATE. */
const postgresError = (code: string, message: string): Error => Object.assign(new Error(message), { severity: 'ERROR', code });

test.each([
  ['22003', 'numeric_field_overflow'],
  ['22P02', 'invalid_text_representation'],
  ['22023', 'data_exception'],
  ['23502', 'not_null_violation'],
  ['23514', 'check_violation'],
  ['23000', 'integrity_constraint_violation'],
  ['54000', 'program_limit_exceeded'],
  ['54001', 'program_limit_exceeded'],
])('Postgres %s (bad data) is non-retryable: %s', (sqlState, type) => {
  const failure = classifyFailure(postgresError(sqlState, 'insert into "invoice_lines" ... - value out of range'));
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type, nonRetryable: true, message: expect.stringContaining('invoice_lines') });
});

test.each([
  ['23505', 'duplicate key (someone wrote it first: the retry finds the row)'],
  ['23P01', 'exclusion conflict'],
  ['40001', 'serialization failure'],
  ['40P01', 'deadlock'],
  ['08006', 'connection failure'],
  ['57P01', 'server shutting down'],
  ['57014', 'statement timeout'],
  ['53300', 'too many connections'],
])('Postgres %s (%s) stays retryable', (sqlState, message) => {
  const error = postgresError(sqlState, message);
  expect(classifyFailure(error)).toBe(error);
});

test('domain errors are typed and non-retryable', () => {
  expect(classifyFailure(new RatingError('event_count_mismatch', 'percentage needs one value per event'))).toMatchObject({ type: 'event_count_mismatch', nonRetryable: true });
  expect(classifyFailure(new InvalidIntervalError('P0D'))).toMatchObject({ type: 'invalid_interval', nonRetryable: true });
  expect(classifyFailure(new TypeError('not a decimal string: "abc"'))).toMatchObject({ type: 'invalid_data', nonRetryable: true });
  expect(classifyFailure(new Error('[DecimalError] Invalid argument: abc'))).toMatchObject({ type: 'invalid_data', nonRetryable: true });
});

test('connection errors, timeouts and unknown errors are left for Temporal to retry', () => {
  for (const error of [
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    Object.assign(new Error('Knex: Timeout acquiring a connection. The pool is probably full.'), { name: 'KnexTimeoutError' }),
    new Error('usage period starting 2031-03-01T00:00:00.000Z is not closed yet'),
  ]) {
    expect(classifyFailure(error)).toBe(error);
  }
});

test("an activity's own ApplicationFailure passes unchanged, retryable or not", () => {
  const gatewayDown = ApplicationFailure.retryable('gateway timed out', 'gateway_unavailable');
  const notFound = ApplicationFailure.nonRetryable('no such invoice', 'invoice_not_found');
  expect(classifyFailure(gatewayDown)).toBe(gatewayDown);
  expect(classifyFailure(notFound)).toBe(notFound);
});

test('classifyActivityFailures classifies the named activities only: results pass through, failures leave classified', async () => {
  const overflow = async (quantity: string): Promise<string> => {
    if (quantity.length > 18) throw postgresError('22003', 'numeric field overflow');
    return quantity;
  };
  const activities = classifyActivityFailures({ rate: overflow, rateUnclassified: overflow }, new Set(['rate']));
  await expect(activities.rate('12')).resolves.toBe('12');
  await expect(activities.rate('10000000000000000000')).rejects.toMatchObject({ type: 'numeric_field_overflow', nonRetryable: true });
  // An activity whose caller cannot handle a non-retryable failure keeps the raw error, so Temporal retries it.
  await expect(activities.rateUnclassified('10000000000000000000')).rejects.toMatchObject({ code: '22003' });
});

test('every activity the worker registers is classified: none retries forever on bad data', () => {
  const registered = Object.keys(createActivities({ db: {} as never, gateway: {} as never })).sort();
  expect([...CLASSIFIED_ACTIVITIES].sort()).toEqual(registered);
});
