/**
 * The whole-lifecycle simulation: seeded random scenarios (scenario-generator.ts) of a few subscriptions over a
 * few monthly periods, driven through the HTTP API and the billing worker on a time-skipping Temporal server, then
 * checked against a pure reference model (reference-model.ts) by the invariants in scenario-invariants.ts.
 *
 *   SIM_SEED=<seed>   replays one scenario exactly (every failure prints its replay command)
 *   SIM_OPS=...       operation kinds: +kind / -kind adjust the defaults, `all` enables the known-bug ones too
 *
 * More scenarios with random seeds: npm run soak -- --scenarios N (docs/simulation.md).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Database } from '../../store/database';
import { createTestDatabase } from '../support/database';
import { operationsFromFlags } from '../support/scenario-generator';
import { describeBatch, describeFailures, simulateBatch } from '../support/scenario-report';
import { SimulationSystem, startSimulationSystem } from '../support/scenario-runner';
import { seedFromEnv } from '../support/seeded-random';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

/** The fixed set `npm test` runs: 100 scenarios. */
const FIXED_SEEDS = Array.from({ length: 100 }, (_, i) => 11_000 + i);

const seeds = process.env.SIM_SEED ? [seedFromEnv('SIM_SEED')] : FIXED_SEEDS;
const kinds = operationsFromFlags(process.env.SIM_OPS);

let env: TestWorkflowEnvironment;
let db: Database;
let system: SimulationSystem;

beforeAll(async () => {
  const bundle = await workflowBundle();
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  system = await startSimulationSystem(env, db, bundle);
}, 120_000);

afterAll(async () => {
  await system?.stop();
  await Promise.all([env?.teardown(), db?.destroy()]);
});

test(`${seeds.length} seeded lifecycle scenarios keep every billing invariant against the reference model`, async () => {
  const report = await simulateBatch(system, seeds, kinds, (line) => process.env.SIM_VERBOSE && process.stderr.write(`${line}\n`));
  console.log(describeBatch(report, kinds));
  if (report.failed.length) throw new Error(`${report.failed.length} of ${report.verdicts.length} scenarios broke an invariant\n\n${describeFailures(report, kinds)}`);
  expect(report.verdicts).toHaveLength(seeds.length);
}, 900_000);
