/**
 * Ingestion validates each event against the metrics of its type from MetricCatalog, which POST /v1/metrics
 * invalidates so the next event sees a new metric at once. A reload already in flight when the metric was created
 * (its read began before the insert committed) finished after the invalidation, marked the stale list fresh, and
 * served it for the next 5 s: events of the new metric were accepted without its checks (a missing or non-numeric
 * property, a negative value), then counted nothing at the period close. The catalog now reads again after such a
 * reload. Pure: the database is a stand-in whose reads the test answers one by one.
 */
import type { Knex } from 'knex';
import { MetricCatalog, type MetricRow } from '../../store/catalog';

const metric = { code: 'tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens' } as unknown as MetricRow;

/** A knex stand-in: every `db('billable_metrics').select('*')` waits until the test answers it. */
function scriptedReads() {
  const pending: ((rows: MetricRow[]) => void)[] = [];
  const db = (() => ({ select: () => new Promise<MetricRow[]>((resolve) => pending.push(resolve)) })) as unknown as Knex;
  const answerNext = async (rows: MetricRow[]) => {
    for (let tries = 0; pending.length === 0 && tries < 100; tries += 1) await new Promise((resolve) => setImmediate(resolve));
    pending.shift()?.(rows); // (no read waiting: the catalog did not read again)
  };
  return { db, answerNext, pendingReads: () => pending.length };
}

test('a metric created while a catalog reload is in flight is seen by the next event, not 5 s later', async () => {
  const { db, answerNext } = scriptedReads();
  const catalog = new MetricCatalog(db, 5_000);

  const before = catalog.metricsFor(['llm.request']); // an event arrives; the catalog starts reading (no metric yet)
  catalog.invalidate(); // meanwhile POST /v1/metrics commits `tokens` and invalidates the catalog
  const next = catalog.metricsFor(['llm.request']); // the next event
  await answerNext([]); // the read that began before the insert answers without the metric
  await answerNext([metric]); // a read after the insert
  expect((await next).get('llm.request')).toEqual([metric]);
  expect((await before).get('llm.request')).toEqual([metric]); // (it waited for the same fresh read)
  expect((await catalog.metricsFor(['llm.request'])).get('llm.request')).toEqual([metric]);
});

test('without an invalidation a fresh catalog is served from memory', async () => {
  const { db, answerNext, pendingReads } = scriptedReads();
  const catalog = new MetricCatalog(db, 5_000);
  const first = catalog.metricsFor(['llm.request']);
  await answerNext([metric]);
  expect((await first).get('llm.request')).toEqual([metric]);
  expect((await catalog.metricsFor(['llm.request'])).get('llm.request')).toEqual([metric]);
  expect(pendingReads()).toBe(0);
});
