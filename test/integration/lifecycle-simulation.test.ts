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
import { operationsFromFlags, Scenario } from '../support/scenario-generator';
import { checkScenario } from '../support/scenario-invariants';
import { describeBatch, describeFailures, nextBase, simulateBatch } from '../support/scenario-report';
import { runScenarios, SimulationSystem, startSimulationSystem } from '../support/scenario-runner';
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

/**
 * Found by the simulation (operation kind cancel_period_end_while_paused). Timeline:
 *
 *   Jan 1 start (10.00 for [Jan 1, Feb 1)) -- Jan 11 pause (no end date) -- Jan 13 cancel at period end
 *
 * Before the fix it was answered 200 {status: pending_cancellation, effective_at: Feb 1}, and the paused run never
 * reached a period end: it waited for a resume that its validator then refused (the status was no longer
 * "paused"), so the subscription never ended. Now the validator refuses what cannot take effect (409
 * subscription_paused: cancel now, or resume first) and the subscription stays paused and consistent.
 */
test('a period-end cancellation while paused is refused (subscription_paused), never answered as done', async () => {
  const base = nextBase(system.now());
  const startAt = new Date(base.getTime() + 3_600_000);
  const day = 86_400_000;
  const scenario: Scenario = {
    seed: 0,
    base,
    periods: 1,
    operationKinds: [],
    subscriptions: [{ index: 0, customer: `sim-paused-cancel-${base.getUTCFullYear()}`, planCode: 'sim-basic', paymentMethod: 'pm_sandbox_ok', startAt }],
    operations: [
      { kind: 'create', subscription: 0, at: startAt, note: 'create' },
      { kind: 'pause', subscription: 0, at: new Date(startAt.getTime() + 10 * day), note: 'pause' },
      { kind: 'cancel', subscription: 0, when: 'period_end', at: new Date(startAt.getTime() + 12 * day), note: 'cancel at period end while paused' },
    ],
    checkAt: new Date(startAt.getTime() + 45 * day),
  };
  const [run] = await runScenarios(system, [scenario]);
  expect(run.subscriptions[0].log.map((entry) => [entry.kind, entry.outcome, entry.code])).toEqual([
    ['pause', 'accepted', undefined],
    ['cancel', 'rejected', 'subscription_paused'],
  ]);
  expect((await checkScenario(system, run)).failures).toEqual([]);
}, 120_000);

test(`${seeds.length} seeded lifecycle scenarios keep every billing invariant against the reference model`, async () => {
  const report = await simulateBatch(system, seeds, kinds, (line) => process.env.SIM_VERBOSE && process.stderr.write(`${line}\n`));
  console.log(describeBatch(report, kinds));
  if (report.failed.length) throw new Error(`${report.failed.length} of ${report.verdicts.length} scenarios broke an invariant\n\n${describeFailures(report, kinds)}`);
  expect(report.verdicts).toHaveLength(seeds.length);
}, 900_000);
