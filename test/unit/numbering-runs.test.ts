/**
 * The single-flight rule of store/numbering-runs.ts, with runs we finish by hand: a caller never joins the run in
 * flight (it may have read the queue before that caller's commit), only the next one, which everyone who joined
 * meanwhile shares. Postgres-backed behaviour: test/integration/invoice-numbering.test.ts.
 */
import { NumberingRun, NumberingRuns } from '../../store/numbering-runs';

/** Runs that stay in flight until the test finishes them, in the order they started. */
function manualRuns() {
  const pending: { finish: (run: NumberingRun) => void; fail: (error: Error) => void }[] = [];
  const runs = new NumberingRuns(
    () =>
      new Promise<NumberingRun>((resolve, reject) => {
        pending.push({ finish: resolve, fail: reject });
      }),
  );
  const result = (numbered: number): NumberingRun => ({ numbered, issued: new Map() });
  return { runs, pending, result };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

test('the first caller starts a run at once; callers during it share one next run, started only when it ends', async () => {
  const { runs, pending, result } = manualRuns();
  const first = runs.join();
  expect(runs.runsStarted).toBe(1);
  const joiners = [runs.join(), runs.join(), runs.join()];
  await flush();
  expect(runs.runsStarted).toBe(1);

  pending[0].finish(result(1));
  expect(await first).toEqual(result(1));
  await flush();
  expect(runs.runsStarted).toBe(2);
  // A caller arriving now (the second run in flight) waits for a third run, not for the second.
  const late = runs.join();
  pending[1].finish(result(3));
  expect(await Promise.all(joiners)).toEqual([result(3), result(3), result(3)]);
  await flush();
  expect(runs.runsStarted).toBe(3);
  pending[2].finish(result(0));
  expect(await late).toEqual(result(0));
  // Nothing in flight: the next caller starts its own run straight away.
  void runs.join();
  expect(runs.runsStarted).toBe(4);
  pending[3].finish(result(0));
});

test('a failed run fails its own callers only: those who joined meanwhile still get the next run', async () => {
  const { runs, pending, result } = manualRuns();
  const failing = runs.join();
  const next = runs.join();
  pending[0].fail(new Error('connection lost'));
  await expect(failing).rejects.toThrow('connection lost');
  await flush();
  expect(runs.runsStarted).toBe(2);
  pending[1].finish(result(2));
  expect(await next).toEqual(result(2));
});

test('a caller whose invoice the run in flight numbered takes that run; the others still wait for the next one', async () => {
  const { runs, pending } = manualRuns();
  const issuedBy = (...ids: string[]): NumberingRun => ({
    numbered: ids.length,
    issued: new Map(ids.map((id, index) => [id, { number: `INV-${index + 1}`, finalizedAt: new Date(0) }])),
  });
  void runs.join();
  // Both committed while the first run was in flight; it took its snapshot after inv-a's commit, before inv-b's.
  const a = runs.joinFor('inv-a');
  const b = runs.joinFor('inv-b');
  const inFlight = issuedBy('inv-a');
  pending[0].finish(inFlight);
  expect(await a).toBe(inFlight);
  await flush();
  expect(runs.runsStarted).toBe(2);
  const next = issuedBy('inv-b');
  pending[1].finish(next);
  expect(await b).toBe(next);
});

test('a caller served by the run in flight is not failed by the next run it no longer waits for', async () => {
  const { runs, pending } = manualRuns();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    void runs.join();
    const a = runs.joinFor('inv-a');
    const inFlight: NumberingRun = { numbered: 1, issued: new Map([['inv-a', { number: 'INV-1', finalizedAt: new Date(0) }]]) };
    pending[0].finish(inFlight);
    expect(await a).toBe(inFlight);
    await flush();
    pending[1].fail(new Error('connection lost'));
    await flush();
    expect(unhandled).toEqual([]);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
