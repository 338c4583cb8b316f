/**
 * `npm run simulate -- --plan <code> --compare <code> --catalog plans.json --usage usage.csv --periods 12`
 *
 * Replays the same usage on each plan through the real billing workflow on a time-skipping Temporal server and a
 * throwaway Postgres, and prints per period and in total: invoices, revenue, usage cost and margin, side by side.
 * See docs/simulation.md; the library is scripts/simulation/.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startThrowawayServer } from '../store/throwaway-database';
import { catalogPlanCodes, CatalogSource, readCatalogFile, readCatalogFromDatabase } from './simulation/catalog';
import { formatSimulationTable, simulationJson } from './simulation/report';
import { simulate } from './simulation/simulate';
import { startSimulationStack } from './simulation/stack';
import { generateUsage, parseGeneratorSpec, parseUsageCsv, UsageRecord } from './simulation/usage';

const USAGE = `usage: npm run simulate -- --plan <code> [--compare <code>]... (--catalog <plans.json> | --catalog-from-database)
                            (--usage <usage.csv> [--customer <id>] | --generate <spec>...) [--periods 12]
                            [--start <iso>] [--growth <percent>] [--seed <n>] [--json] [--verbose]

  --catalog <file>          {"metrics": [POST /v1/metrics bodies], "plans": [POST /v1/plans bodies]}
  --catalog-from-database   read the plans (newest version) and their metrics from DATABASE_URL (read-only)
  --usage <file>            CSV: timestamp,type,properties[,customer][,id]  or  timestamp,event_type,property,value
  --customer <id>           the customer to replay when the CSV holds several
  --generate <spec>         synthetic usage, repeatable: <event type>[:<property>]=<amount per month>[@<events per month>]
                            e.g. llm.request:tokens=2000000@120  ticket.resolved=40
  --start <iso>             first period start (default: the UTC month of the first event; for --generate only,
                            the current UTC month)
  --periods <n>             monthly periods to simulate (default 12)
  --growth <percent>        month-over-month growth of generated usage (default 0)
  --seed <n>                seed of generated usage (default 1)
  --json                    print JSON instead of the table
The throwaway database is embedded in a temp folder, or a new database on DATABASE_URL's server when it is set.
Example: npm run simulate -- --plan starter --compare scale --catalog examples/catalog.json --usage examples/usage.csv`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      plan: { type: 'string' },
      compare: { type: 'string', multiple: true },
      catalog: { type: 'string' },
      'catalog-from-database': { type: 'boolean' },
      usage: { type: 'string' },
      customer: { type: 'string' },
      generate: { type: 'string', multiple: true },
      start: { type: 'string' },
      periods: { type: 'string', default: '12' },
      growth: { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const planCodes = [values.plan, ...(values.compare ?? [])].filter((code): code is string => Boolean(code));
  if (!values.plan) return fail('--plan is required');
  if (Boolean(values.catalog) === Boolean(values['catalog-from-database'])) return fail('give either --catalog <file> or --catalog-from-database');
  if (!values.usage && !values.generate?.length) return fail('give --usage <csv> or --generate <spec>');
  const periods = Number(values.periods);
  if (!/^\d+$/.test(values.periods!) || periods < 1 || periods > 120) return fail('--periods must be a whole number from 1 to 120');
  const start = values.start ? new Date(values.start) : undefined;
  if (start && Number.isNaN(start.getTime())) return fail(`--start ${values.start} is not an instant (e.g. 2027-01-01T00:00:00Z)`);
  if (values.growth !== undefined && !/^-?\d+(\.\d+)?$/.test(values.growth)) return fail('--growth is a percentage such as 5 or -2.5');
  if (values.seed !== undefined && !/^\d+$/.test(values.seed)) return fail('--seed is a whole number');

  const progress = (line: string): void => {
    if (values.verbose || !values.json) process.stderr.write(`[simulate] ${line}\n`);
  };

  let catalog: CatalogSource;
  if (values.catalog) {
    catalog = { kind: 'file', catalog: await readCatalogFile(values.catalog) };
  } else {
    if (!process.env.DATABASE_URL) return fail('--catalog-from-database reads DATABASE_URL, which is unset');
    catalog = { kind: 'rows', rows: await readCatalogFromDatabase(process.env.DATABASE_URL, planCodes) };
  }

  const offered = catalogPlanCodes(catalog);
  const unknown = planCodes.filter((code) => !offered.includes(code));
  if (unknown.length) return fail(`the catalog has no plan ${unknown.join(', ')}; it offers ${offered.join(', ') || 'none'}`);

  const usage: UsageRecord[] = [];
  const sources: string[] = [];
  if (values.usage) {
    usage.push(...parseUsageCsv(await readFile(values.usage, 'utf8'), { customer: values.customer }));
    sources.push(values.usage);
  }
  if (values.generate?.length) {
    const specs = values.generate.map(parseGeneratorSpec);
    const generatedStart = start ?? currentUtcMonth();
    usage.push(...generateUsage(specs, { start: generatedStart, periods, growthPercent: values.growth, seed: values.seed ? Number(values.seed) : undefined }));
    sources.push(`generated ${values.generate.join(' ')}${values.growth ? ` growing ${values.growth} %/month` : ''}`);
  }

  // Quiet worker logs: the table is the output. (--verbose keeps the SDK's own.)
  const level = values.verbose ? 'INFO' : 'ERROR';
  Runtime.install({ logger: new DefaultLogger(level), telemetryOptions: { logging: { filter: { core: level, other: level }, forward: {} } } });
  const postgres = await startThrowawayServer({ tempPrefix: 'meterloop-simulation-', durable: false });
  progress(`Postgres: ${postgres.description}`);
  const stack = await startSimulationStack({ postgresServerUrl: postgres.url, log: progress }).catch(async (error: unknown) => {
    await postgres.stop();
    throw error;
  });
  try {
    progress(stack.description);
    const result = await simulate(stack, { catalog, planCodes, usage, periods, start: start ?? (values.usage ? undefined : currentUtcMonth()), log: progress });
    progress(`done in ${result.seconds.toFixed(1)} s`);
    console.log(values.json ? JSON.stringify(simulationJson(result), null, 2) : formatSimulationTable(result, sources.join(' + ')));
  } finally {
    await stack.stop();
    await postgres.stop();
  }
}

function currentUtcMonth(): Date {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
}

function fail(message: string): void {
  console.error(`${message}\n\n${USAGE}`);
  process.exitCode = 2;
}

main()
  .catch((error: unknown) => {
    console.error(`simulate: ${error instanceof Error ? error.message : String(error)}`);
    if (process.env.DEBUG && error instanceof Error) console.error(error.stack);
    process.exitCode = 1;
  })
  // The Temporal runtime's native threads may keep the process alive after a failure; everything is stopped by now.
  .finally(() => setTimeout(() => process.exit(), 2_000).unref());
