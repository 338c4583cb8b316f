/**
 * Runs a set of seeds through the lifecycle simulation and reports: the shared part of the jest suite
 * (test/integration/lifecycle-simulation.test.ts) and the soak script (scripts/soak.ts).
 */
import { generateScenario, KNOWN_BUG_OPERATIONS, OperationKind, DEFAULT_OPERATIONS } from './scenario-generator';
import { checkScenario, ScenarioVerdict } from './scenario-invariants';
import { replayScenarioRuns } from './scenario-replay';
import { runScenarios, SimulationSystem } from './scenario-runner';

/** Every scenario's instants are relative to a 1 January of 2030 + 4k: calendars repeat, so a seed replays exactly. */
export const SIMULATION_BASE = new Date('2030-01-01T00:00:00.000Z');

/** The first base at or after the system's clock (a later batch on the same server needs a later one). */
export function nextBase(now: Date): Date {
  let base = SIMULATION_BASE;
  while (base.getTime() < now.getTime() + 86_400_000) base = new Date(Date.UTC(base.getUTCFullYear() + 4, 0, 1));
  return base;
}

export interface BatchReport {
  readonly verdicts: readonly ScenarioVerdict[];
  readonly failed: readonly ScenarioVerdict[];
  readonly seconds: number;
  readonly workerRestarts: number;
  /** Workflow runs replayed against the code after the scenarios (./scenario-replay.ts). */
  readonly replayedRuns: number;
}

export async function simulateBatch(system: SimulationSystem, seeds: readonly number[], kinds: ReadonlySet<OperationKind>, log: (line: string) => void): Promise<BatchReport> {
  const started = Date.now();
  const restartsBefore = system.restarts;
  const base = nextBase(system.now());
  const scenarios = [...new Set(seeds)].map((seed) => generateScenario(seed, base, kinds));
  const runs = await runScenarios(system, scenarios, log);
  const replay = await replayScenarioRuns(system, runs);
  const verdicts: ScenarioVerdict[] = [];
  for (const run of runs) {
    const verdict = await checkScenario(system, run);
    verdicts.push({ ...verdict, failures: [...verdict.failures, ...(replay.failuresBySeed.get(run.scenario.seed) ?? [])] });
  }
  return { verdicts, failed: verdicts.filter((verdict) => verdict.failures.length > 0), seconds: (Date.now() - started) / 1000, workerRestarts: system.restarts - restartsBefore, replayedRuns: replay.replayed };
}

/** The flag list to replay with, when it differs from the defaults. */
export function operationsFlag(kinds: ReadonlySet<OperationKind>): string {
  const added = [...kinds].filter((kind) => !DEFAULT_OPERATIONS.has(kind)).map((kind) => `+${kind}`);
  const removed = [...DEFAULT_OPERATIONS].filter((kind) => !kinds.has(kind)).map((kind) => `-${kind}`);
  return [...added, ...removed].join(',');
}

export function replayCommand(seed: number, kinds: ReadonlySet<OperationKind>): string {
  const flags = operationsFlag(kinds);
  return `SIM_SEED=${seed}${flags ? ` SIM_OPS=${flags}` : ''} npx jest test/integration/lifecycle-simulation.test.ts`;
}

export function describeFailures(report: BatchReport, kinds: ReadonlySet<OperationKind>): string {
  return report.failed
    .map((verdict) => [`seed ${verdict.seed} failed ${verdict.failures.length} invariant check(s):`, ...verdict.failures.map((failure) => `  - ${failure}`), `  replay: ${replayCommand(verdict.seed, kinds)}`].join('\n'))
    .join('\n\n');
}

export function describeBatch(report: BatchReport, kinds: ReadonlySet<OperationKind>): string {
  const sum = (pick: (verdict: ScenarioVerdict) => number): number => report.verdicts.reduce((total, verdict) => total + pick(verdict), 0);
  const disabled = Object.keys(KNOWN_BUG_OPERATIONS).filter((kind) => !kinds.has(kind as OperationKind));
  return (
    `${report.verdicts.length} scenarios (${report.failed.length} failed) in ${report.seconds.toFixed(1)} s: ` +
    `${sum((v) => v.counts.operations)} operations, ${sum((v) => v.counts.invoices)} invoices, ${sum((v) => v.counts.events)} accepted events ` +
    `(${sum((v) => v.counts.lateEvents)} late), ${report.workerRestarts} worker restarts, ${report.replayedRuns} workflow runs replayed` +
    (disabled.length ? `; known-bug operations off: ${disabled.join(', ')}` : '')
  );
}
