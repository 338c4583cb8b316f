/**
 * A Temporal call the API bounds with a deadline: under load the gRPC client may report its own expired deadline
 * as CANCELLED ("Call cancelled"), which read as a refusal (`live_query_failed`) or an unknown error. Found by
 * test/e2e/api-worker-down.test.ts on a loaded machine. The client here is only its `withDeadline`, which hands the
 * call the deadline as the real one does; the call fails as grpc-js fails it.
 */
import type { Client } from '@temporalio/client';
import { unavailableDependencyOf } from '../../api/problem';
import { TemporalDeadlinePassed, withTemporalDeadline } from '../../api/temporal-deadline';

/** gRPC status codes, as grpc-js reports them. */
const CANCELLED = 1;
const NOT_FOUND = 5;

function grpcError(code: number, details: string): Error {
  return Object.assign(new Error(`${code}: ${details}`), { code, details, metadata: {} });
}

const clientWhoseCallsFail = (failure: () => Error, afterMs: number): Client =>
  ({ withDeadline: (_deadline: number, _call: () => Promise<unknown>) => new Promise((_, reject) => setTimeout(() => reject(failure()), afterMs)) }) as unknown as Client;

test('a call cancelled once its deadline has passed is a Temporal that did not answer in time (503 temporal_unavailable)', async () => {
  const client = clientWhoseCallsFail(() => Object.assign(new Error('Failed to query Workflow'), { cause: grpcError(CANCELLED, 'Call cancelled') }), 60);
  const error = await withTemporalDeadline(client, () => Promise.resolve(), 20).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(TemporalDeadlinePassed);
  expect(unavailableDependencyOf(error)).toBe('temporal_unavailable');
});

test('a cancellation before the deadline, or another refusal after it, is passed on as it came', async () => {
  const early = grpcError(CANCELLED, 'Call cancelled');
  expect(await withTemporalDeadline(clientWhoseCallsFail(() => early, 0), () => Promise.resolve(), 5_000).catch((e: unknown) => e)).toBe(early);
  const refused = grpcError(NOT_FOUND, 'workflow not found');
  expect(await withTemporalDeadline(clientWhoseCallsFail(() => refused, 60), () => Promise.resolve(), 20).catch((e: unknown) => e)).toBe(refused);
});
