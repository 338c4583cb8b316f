/**
 * Soak run of the whole-lifecycle simulation: many scenarios with random seeds, in batches, on a time-skipping
 * Temporal server and a throwaway Postgres (DATABASE_URL's server, or an embedded one). Each failing seed is
 * printed with the command that replays it. See docs/simulation.md.
 *
 *   npm run soak -- --scenarios 500 [--batch 100] [--seed <first seed>] [--ops +plan_change_in_grace]
 */
import { createTimeSkippingEnvironment, workflowBundle } from '../test/support/temporal';
import { startThrowawayDatabase } from '../store/throwaway-database';
import { operationsFromFlags } from '../test/support/scenario-generator';
import { describeBatch, describeFailures, simulateBatch } from '../test/support/scenario-report';
import { startSimulationSystem } from '../test/support/scenario-runner';
import { seededRandom } from '../test/support/seeded-random';

interface SoakOptions {
  readonly scenarios: number;
  readonly batch: number;
  readonly seed: number;
  readonly ops: string | undefined;
}

function parseArguments(argv: readonly string[]): SoakOptions {
  const value = (name: string): string | undefined => {
    const index = argv.indexOf(`--${name}`);
    return index >= 0 ? argv[index + 1] : undefined;
  };
  const integer = (name: string, fallback: number): number => {
    const given = value(name);
    if (given === undefined) return fallback;
    const parsed = Number(given);
    if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`--${name} needs a non-negative integer, got ${given}`);
    return parsed;
  };
  return {
    scenarios: integer('scenarios', 200),
    batch: Math.max(1, integer('batch', 100)),
    seed: integer('seed', Math.floor(Math.random() * 2 ** 32)),
    ops: value('ops') ?? process.env.SIM_OPS,
  };
}

async function main(): Promise<void> {
  const options = parseArguments(process.argv.slice(2));
  const kinds = operationsFromFlags(options.ops);
  // The seeds themselves come from one printed seed, so a whole soak run can be repeated too.
  const nextSeed = seededRandom(options.seed);
  const seeds = Array.from({ length: options.scenarios }, () => Math.floor(nextSeed() * 2 ** 32));
  console.log(`soak: ${options.scenarios} scenarios in batches of ${options.batch} (seed list from --seed ${options.seed})`);

  const [env, database, bundle] = await Promise.all([
    createTimeSkippingEnvironment(),
    startThrowawayDatabase({ tempPrefix: 'meterloop-soak-', durable: false, namePrefix: 'soak' }),
    workflowBundle(),
  ]);
  const system = await startSimulationSystem(env, database.db, bundle);
  let failed = 0;
  try {
    for (let start = 0; start < seeds.length; start += options.batch) {
      const report = await simulateBatch(system, seeds.slice(start, start + options.batch), kinds, () => undefined);
      console.log(`batch ${start / options.batch + 1}: ${describeBatch(report, kinds)}`);
      if (report.failed.length) console.log(describeFailures(report, kinds));
      failed += report.failed.length;
    }
  } finally {
    await system.stop();
    await env.teardown();
    await database.stop();
  }
  console.log(failed ? `soak: ${failed} of ${seeds.length} scenarios failed` : `soak: all ${seeds.length} scenarios passed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 2;
});
