/**
 * Ingestion through the real HTTP API (`POST /v1/events` with an `app` API key): the whole middleware chain,
 * JSON parsing, zod shape checks, customer and metric validation, the deduplicating insert, and a durable
 * commit per request. Every run checks that each event was accepted once and stored once.
 *
 * - `ingest.batch`: events/s in batches of 1,000, beside the raw insert ceiling measured in the same run: rows of
 *   the same shape through the same `insertUsageEvents` statement (unnest, ON CONFLICT DO NOTHING), called
 *   directly from the pool, with no HTTP and no validation, at the same concurrency and event count.
 * - `ingest.single`: requests/s with one event per request, and its p50/p99 latency.
 *
 * Progress lines on stderr split the CPU between the API process, the load generator, Postgres and the machine.
 */
import { countUsageEvents } from '../store/bulk-fixtures';
import { insertUsageEvents, NewUsageEvent } from '../store/usage';
import { EventSource, storedEvent } from './events';
import { LoadResult, LoadSpec, loadPlacement, runLoad } from './load';
import { profiled } from './profile';
import { describeTreeCpu, sampleTreeCpu } from './process-cpu';
import { Benchmark, BenchResult, machineBusy, percentile, progress, sampleMachineCpu } from './report';
import type { BenchStack } from './stack';

const BATCH_SIZE = 1_000;
const BATCH_EVENTS = envInt('BENCH_BATCH_EVENTS', 200_000);
const BATCH_CONCURRENCY = envInt('BENCH_BATCH_CONCURRENCY', 4);
/** Turns each side takes (see ABBA below); BATCH_EVENTS is split evenly between them. */
const BATCH_SLICES = envInt('BENCH_BATCH_SLICES', 4);
// 10,000 requests put 100 samples above the p99 and take 8-11 s on a quiet machine; 20,000 took two minutes of
// the quick set's three under load and changed no figure.
const SINGLE_REQUESTS = envInt('BENCH_SINGLE_REQUESTS', 10_000);
const SINGLE_CONCURRENCY = envInt('BENCH_SINGLE_CONCURRENCY', 16);
const CLIENT = process.env.BENCH_CLIENT === 'fetch' ? 'fetch' : 'http';

export const ingestBatch: Benchmark = {
  name: 'ingest.batch',
  group: 'ingest',
  needsStack: true,
  async run({ stack }) {
    const s = stack!;
    const sliceEvents = Math.ceil(BATCH_EVENTS / BATCH_SLICES / BATCH_SIZE) * BATCH_SIZE;
    progress(
      `ingest.batch: ${sliceEvents * BATCH_SLICES} events each for the API and the ceiling, in batches of ${BATCH_SIZE}, ` +
        `concurrency ${BATCH_CONCURRENCY}, ${BATCH_SLICES} interleaved slices, load generator ${loadPlacement()}/${CLIENT}`,
    );

    // Warm-up: JIT, connection pools, the customer and API key caches, Postgres' buffers; then start from empty.
    await throughApi(s, source(s, 'warm-api'), 20_000, BATCH_SIZE, BATCH_CONCURRENCY);
    await directInsert(s, source(s, 'warm-ceiling'), 20_000, BATCH_CONCURRENCY);
    await s.resetUsageEvents();

    // The ceiling and the API take turns in slices, ordered ABBA (ceiling, API, API, ceiling, ...), on one table
    // that grows as a real one does: a neighbour's burst on a shared machine, a checkpoint or the growing indexes
    // then weigh on both sides alike. Each side's rate is its events over its summed time.
    const seconds = { ceiling: 0, api: 0 };
    let stored = 0;
    for (let slice = 1; slice <= BATCH_SLICES; slice += 1) {
      const order: ('ceiling' | 'api')[] = slice % 2 === 1 ? ['ceiling', 'api'] : ['api', 'ceiling'];
      for (const side of order) {
        const events = source(s, `${side}-${slice}`); // same shape of rows on both sides, ids of their own
        if (side === 'ceiling') {
          const ceiling = await directInsert(s, events, sliceEvents, BATCH_CONCURRENCY);
          seconds.ceiling += ceiling.elapsedSeconds;
          progress(`  slice ${slice} ceiling: ${Math.round(sliceEvents / ceiling.elapsedSeconds)} events/s; ${ceiling.cpu}, ${ceiling.machine}`);
        } else {
          const machine = sampleMachineCpu();
          const tree = sampleTreeCpu();
          const api = await profiled(`ingest.batch.slice-${slice}`, () => throughApi(s, events, sliceEvents, BATCH_SIZE, BATCH_CONCURRENCY));
          expectAllAccepted(api, sliceEvents);
          seconds.api += api.elapsedSeconds;
          progress(
            `  slice ${slice} API:     ${Math.round(sliceEvents / api.elapsedSeconds)} events/s; ${describeTreeCpu(tree, sampleTreeCpu(), api.elapsedSeconds)}, ` +
              `${generatorBusy(api)}, ${machineBusy(machine)}, ` +
              `p99 ${percentileOf(api.latenciesMs, 99).toFixed(0)} ms per batch`,
          );
        }
        stored += sliceEvents;
        await expectStored(s, stored);
      }
    }
    await s.resetUsageEvents();

    const total = sliceEvents * BATCH_SLICES;
    const ceiling = total / seconds.ceiling;
    const ours = total / seconds.api;
    progress(`  API ${Math.round(ours)} events/s = ${(ours / ceiling).toFixed(2)} of the ceiling (${Math.round(ceiling)} events/s)`);
    return [{ name: 'ingest.batch', value: ours, unit: 'events/s', baseline: { name: 'ingest.batch.db_insert_ceiling', value: ceiling } }];
  },
};

export const ingestSingle: Benchmark = {
  name: 'ingest.single',
  group: 'ingest',
  needsStack: true,
  async run({ stack }) {
    const s = stack!;
    progress(`ingest.single: ${SINGLE_REQUESTS} requests of one event, concurrency ${SINGLE_CONCURRENCY}, load ${loadPlacement()}/${CLIENT}`);
    await throughApi(s, source(s, 'warm-single'), 1_000, 1, SINGLE_CONCURRENCY);
    await s.resetUsageEvents();

    const machine = sampleMachineCpu();
    const tree = sampleTreeCpu();
    const result = await profiled('ingest.single', () => throughApi(s, source(s, 'single'), SINGLE_REQUESTS, 1, SINGLE_CONCURRENCY));
    expectAllAccepted(result, SINGLE_REQUESTS);
    await expectStored(s, SINGLE_REQUESTS);
    await s.resetUsageEvents();

    const perSecond = result.requests / result.elapsedSeconds;
    const p50 = percentileOf(result.latenciesMs, 50);
    const p99 = percentileOf(result.latenciesMs, 99);
    progress(
      `  ${Math.round(perSecond)} requests/s, p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms; ${describeTreeCpu(tree, sampleTreeCpu(), result.elapsedSeconds)}, ` +
        `${generatorBusy(result)}, ${machineBusy(machine)}`,
    );
    const results: BenchResult[] = [
      { name: 'ingest.single', value: perSecond, unit: 'requests/s' },
      { name: 'ingest.single.p50', value: p50, unit: 'ms' },
      { name: 'ingest.single.p99', value: p99, unit: 'ms' },
    ];
    return results;
  },
};

export function source(stack: BenchStack, idPrefix: string): EventSource {
  // A minute ago: recent, and never "in the future" for the API's clock.
  return { idPrefix, customerExternalIds: stack.customerExternalIds, timestamp: new Date(Date.now() - 60_000).toISOString() };
}

export async function throughApi(stack: BenchStack, eventSource: EventSource, eventCount: number, batchSize: number, concurrency: number): Promise<LoadResult> {
  const spec: LoadSpec = { url: `${stack.baseUrl}/v1/events`, apiKey: stack.apiKey, source: eventSource, eventCount, batchSize, concurrency, client: CLIENT };
  const result = await runLoad(spec);
  if (result.failures > 0) throw new Error(`${result.failures} of ${result.requests} requests failed; first: ${result.firstFailure}`);
  return result;
}

/** The ceiling: the same rows, the same statement, the same concurrency, straight from the pool. */
async function directInsert(
  stack: BenchStack,
  eventSource: EventSource,
  eventCount: number,
  concurrency: number,
): Promise<{ elapsedSeconds: number; cpu: string; machine: string }> {
  const batches: NewUsageEvent[][] = [];
  for (let start = 0; start < eventCount; start += BATCH_SIZE) {
    batches.push(Array.from({ length: Math.min(BATCH_SIZE, eventCount - start) }, (_, offset) => storedEvent(eventSource, stack.customerIds, start + offset)));
  }
  let next = 0;
  let inserted = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const rows = await insertUsageEvents(stack.db, batches[next++]);
      inserted += rows.length; // after the await: `inserted += await ...` would read it before and lose updates
    }
  };
  const machine = sampleMachineCpu();
  const tree = sampleTreeCpu();
  const startedAt = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const cpu = describeTreeCpu(tree, sampleTreeCpu(), elapsedSeconds);
  const machineShare = machineBusy(machine);
  if (inserted !== eventCount) throw new Error(`direct insert stored ${inserted} of ${eventCount} events`);
  return { elapsedSeconds, cpu, machine: machineShare };
}

function expectAllAccepted(result: LoadResult, eventCount: number): void {
  if (result.accepted !== eventCount || result.duplicates !== 0 || result.rejected !== 0) {
    throw new Error(`expected ${eventCount} accepted events, got accepted ${result.accepted}, duplicates ${result.duplicates}, rejected ${result.rejected}`);
  }
}

async function expectStored(stack: BenchStack, eventCount: number): Promise<void> {
  const count = await countUsageEvents(stack.db);
  if (count !== eventCount) throw new Error(`usage_events holds ${count} rows, expected ${eventCount}`);
}

function generatorBusy(result: LoadResult): string {
  if (loadPlacement() === 'in-process') return 'generator in the API process';
  return `generator ${(result.loadProcessCpuSeconds / result.elapsedSeconds).toFixed(2)} cores`;
}

function percentileOf(values: readonly number[], p: number): number {
  return percentile(Float64Array.from(values).sort(), p);
}

function envInt(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed <= 0) throw new Error(`${name} must be a positive integer, got ${value}`);
  return parsed;
}
