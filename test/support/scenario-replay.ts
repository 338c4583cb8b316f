/**
 * Replays every run of every simulated subscription against the workflow code that ran it. The live runs stayed in
 * the worker's sticky cache between restarts, so a workflow task that a replay would group differently (a handler
 * and the main loop trading places, a patch asked in one run and not the next) never showed. On a real worker
 * that run would fail its next workflow task after an eviction or a restart, and its billing would stop until
 * someone deployed a fix. Replaying the whole recorded history is the check that does not depend on the cache.
 */
import { Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import type { temporal } from '@temporalio/proto';
import { runHistories } from './histories';
import type { ScenarioRun, SimulationSystem } from './scenario-runner';

export interface ReplayReport {
  /** Workflow runs replayed. */
  readonly replayed: number;
  /** The runs that did not replay, as failures by scenario seed. */
  readonly failuresBySeed: ReadonlyMap<number, readonly string[]>;
}

/** Replays every run of `runs`' subscriptions. */
export async function replayScenarioRuns(system: SimulationSystem, runs: readonly ScenarioRun[]): Promise<ReplayReport> {
  // Not the environment's own client: its calls would unlock time skipping (./scenario-runner.ts).
  const client = new Client({ connection: system.env.connection });
  const seedOf = new Map<string, number>();
  const histories: { workflowId: string; history: temporal.api.history.v1.IHistory }[] = [];
  for (const run of runs) {
    for (const subscription of run.subscriptions.filter((s) => s.subscriptionId)) {
      const workflowId = `subscription:${subscription.subscriptionId}`;
      seedOf.set(workflowId, run.scenario.seed);
      for (const history of await runHistories(client, workflowId)) histories.push({ workflowId, history });
    }
  }
  const failuresBySeed = new Map<number, string[]>();
  for await (const result of Worker.runReplayHistories({ workflowBundle: system.workflowBundle }, histories)) {
    if (!result.error) continue;
    const seed = seedOf.get(result.workflowId)!;
    failuresBySeed.set(seed, [...(failuresBySeed.get(seed) ?? []), `${result.workflowId} run ${result.runId} does not replay: ${result.error.message}`]);
  }
  return { replayed: histories.length, failuresBySeed };
}
