/**
 * `ingest.batch.catalog_1k`: events/s through `POST /v1/events` (batches of 1,000) with 1,000 event types in the
 * catalog (1,000 more metrics, one of them on the ingested event type with `group_by`, so the dimensional check
 * runs), beside today's catalog of 3 metrics measured in the same run. The two alternate ABBA on one table; the
 * API's metric catalog reloads within 5 s after each switch (we wait 6 s).
 */
import { progress, type Benchmark } from './report';
import { EVENT_TYPE } from './events';
import { source, throughApi } from './ingest';
import type { BenchStack } from './stack';

const EVENTS_PER_SLICE = Number(process.env.BENCH_CATALOG_EVENTS ?? 20_000);
const BATCH_SIZE = 1_000;
const CONCURRENCY = 4;
const EXTRA_TYPES = 1_000;

async function setLargeCatalog(stack: BenchStack, large: boolean): Promise<void> {
  await stack.db('billable_metrics').where('code', 'like', 'catalog-%').delete();
  if (large) {
    const rows = Array.from({ length: EXTRA_TYPES - 1 }, (_, index) => ({
      code: `catalog-${index}`,
      name: `Catalog ${index}`,
      event_type: `catalog.type.${index}`,
      aggregation: 'sum',
      property: 'amount',
      filters: {},
      group_by: JSON.stringify(index % 2 ? ['model', 'region'] : []),
    }));
    rows.push({ code: 'catalog-tokens-by-model', name: 'Tokens by model', event_type: EVENT_TYPE, aggregation: 'sum', property: 'tokens', filters: {}, group_by: JSON.stringify(['model']) });
    for (let start = 0; start < rows.length; start += 500) await stack.db('billable_metrics').insert(rows.slice(start, start + 500));
  }
  await new Promise((resolve) => setTimeout(resolve, 6_000));
}

export const ingestBatchCatalog: Benchmark = {
  name: 'ingest.batch.catalog_1k',
  group: 'ingest-catalog',
  needsStack: true,
  async run({ stack }) {
    const s = stack!;
    progress(`ingest.batch.catalog_1k: ${EVENTS_PER_SLICE} events per slice, ABBA, 3-metric catalog vs +${EXTRA_TYPES} metrics/event types`);
    await throughApi(s, source(s, 'catalog-warm'), 10_000, BATCH_SIZE, CONCURRENCY);
    const seconds = { small: 0, large: 0 };
    const order: ('small' | 'large')[] = ['small', 'large', 'large', 'small'];
    let current: 'small' | 'large' | undefined;
    for (const [slice, side] of order.entries()) {
      if (side !== current) await setLargeCatalog(s, side === 'large');
      current = side;
      const result = await throughApi(s, source(s, `catalog-${side}-${slice}`), EVENTS_PER_SLICE, BATCH_SIZE, CONCURRENCY);
      if (result.accepted !== EVENTS_PER_SLICE) throw new Error(`expected ${EVENTS_PER_SLICE} accepted, got ${result.accepted} (rejected ${result.rejected})`);
      seconds[side] += result.elapsedSeconds;
      progress(`  slice ${slice + 1} ${side} catalog: ${Math.round(EVENTS_PER_SLICE / result.elapsedSeconds)} events/s`);
    }
    await setLargeCatalog(s, false);
    await s.resetUsageEvents();
    const large = (2 * EVENTS_PER_SLICE) / seconds.large;
    const small = (2 * EVENTS_PER_SLICE) / seconds.small;
    return [{ name: 'ingest.batch.catalog_1k', value: large, unit: 'events/s', baseline: { name: 'ingest.batch.catalog_3', value: small } }];
  },
};
