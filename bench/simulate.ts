/**
 * `simulate.year`: seconds for the pricing simulation (scripts/simulation/) to bill one subscription through twelve
 * monthly periods with usage: catalog through the API, a year of generated usage (about 3,600 events) replayed,
 * the real workflow and activities run a day at a time on the time-skipping server, invoices and margins read back.
 * `simulate.year.setup`: starting what it runs on (throwaway Postgres, time-skipping server, workflow bundle, worker),
 * measured apart because it does not grow with the periods simulated.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { CatalogFile } from '../scripts/simulation/catalog';
import { simulate } from '../scripts/simulation/simulate';
import { startSimulationStack } from '../scripts/simulation/stack';
import { generateUsage, parseGeneratorSpec } from '../scripts/simulation/usage';
import { startThrowawayServer } from '../store/throwaway-database';
import { Benchmark, progress, seconds } from './report';

const CATALOG: CatalogFile = {
  metrics: [
    { code: 'tokens', name: 'Tokens', event_type: 'llm.request', aggregation: 'sum', property: 'tokens', unit_cost: '0.00002' },
    { code: 'tickets', name: 'Resolved tickets', event_type: 'ticket.resolved', aggregation: 'count', unit_cost: '0.35' },
  ],
  plans: [
    {
      code: 'hybrid',
      name: 'Hybrid',
      currency: 'USD',
      billing_interval: 'P1M',
      flat_fee: '49.00',
      credit_bucket: '20.00',
      charges: [
        { metric_code: 'tokens', price: { model: 'graduated', tiers: [{ upTo: '1000000', unitPrice: '0.00005' }, { upTo: null, unitPrice: '0.00003' }] } },
        { metric_code: 'tickets', price: { model: 'per_unit', unitPrice: '0.99' } },
      ],
    },
  ],
};

const START = new Date('2027-01-01T00:00:00Z');
const PERIODS = 12;

/**
 * The worker runs in this process: route the SDK's native log lines through a logger on stderr (by default they
 * go to stdout, which carries only result lines). Only possible before anything used the Temporal runtime.
 */
function temporalLogsToStderr(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: { core: 'WARN', other: 'WARN' }, forward: {} } } });
  } catch {
    progress('simulate.year: the Temporal runtime was already installed; its log settings apply');
  }
}

export const simulateYear: Benchmark = {
  name: 'simulate.year',
  group: 'simulate',
  needsStack: false,
  async run() {
    temporalLogsToStderr();
    const usage = generateUsage([parseGeneratorSpec('llm.request:tokens=2000000@250'), parseGeneratorSpec('ticket.resolved=50')], { start: START, periods: PERIODS, growthPercent: '5', seed: 42 });
    const setupStartedAt = process.hrtime.bigint();
    const postgres = await startThrowawayServer({ tempPrefix: 'meterloop-simulation-', durable: false });
    const stack = await startSimulationStack({ postgresServerUrl: postgres.url }).catch(async (error: unknown) => {
      await postgres.stop();
      throw error;
    });
    const setup = seconds(setupStartedAt);
    try {
      progress(`simulate.year: ${stack.description}; ${usage.length} events, ${PERIODS} periods`);
      const result = await simulate(stack, { catalog: { kind: 'file', catalog: CATALOG }, planCodes: ['hybrid'], usage, start: START, periods: PERIODS });
      const plan = result.plans[0];
      if (plan.total.invoiceCount !== PERIODS + 1) throw new Error(`expected ${PERIODS + 1} invoices (12 periods and a closing one), got ${plan.total.invoiceCount}`);
      progress(`  ${plan.total.invoiceCount} invoices, revenue ${plan.total.revenue} ${plan.currency}, margin ${plan.total.margin}; setup ${setup.toFixed(1)} s`);
      return [
        { name: 'simulate.year', value: result.seconds, unit: 's' },
        { name: 'simulate.year.setup', value: setup, unit: 's' },
      ];
    } finally {
      await stack.stop();
      await postgres.stop();
    }
  },
};
