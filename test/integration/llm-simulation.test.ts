/**
 * The pricing simulation compares a flat LLM plan with a dimensional one on the same usage (issue 14, "the
 * simulation can compare a flat plan with a dimensional one"), with the catalog of examples/llm-catalog.json, and
 * shows the dimensional plan's figures per combination, as the margins report computes them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { CatalogFile } from '../../scripts/simulation/catalog';
import { formatSimulationTable, simulationJson } from '../../scripts/simulation/report';
import { simulate } from '../../scripts/simulation/simulate';
import { SimulationStack, startSimulationStack } from '../../scripts/simulation/stack';
import { parseUsageCsv } from '../../scripts/simulation/usage';
import { workflowBundle } from '../support/temporal';

const CATALOG: CatalogFile = JSON.parse(readFileSync(path.join(__dirname, '../../examples/llm-catalog.json'), 'utf8'));

const USAGE_CSV = `timestamp,type,properties
2025-01-05T10:00:00Z,llm.usage,"{""model"":""large"",""direction"":""input"",""tokens"":1000000}"
2025-01-06T10:00:00Z,llm.usage,"{""model"":""large"",""direction"":""output"",""tokens"":100000}"
2025-01-07T10:00:00Z,llm.usage,"{""model"":""small"",""direction"":""cached"",""tokens"":500000}"
2025-01-31T23:00:00Z,llm.usage,"{""model"":""mystery"",""direction"":""output"",""tokens"":50000}"
2025-02-02T10:00:00Z,llm.usage,"{""model"":""small"",""direction"":""input"",""tokens"":2000000}"
2025-02-03T10:00:00Z,llm.usage,"{""model"":""small"",""direction"":""output"",""tokens"":1000000}"
`;

let stack: SimulationStack;

beforeAll(async () => {
  stack = await startSimulationStack({ postgresServerUrl: process.env.TEST_POSTGRES_URL!, workflowBundle: await workflowBundle() });
});

afterAll(async () => stack?.stop());

test('a flat LLM plan and a per-model-and-direction plan, side by side on the same usage', async () => {
  const result = await simulate(stack, { catalog: { kind: 'file', catalog: CATALOG }, planCodes: ['llm-flat', 'llm-dimensional'], usage: parseUsageCsv(USAGE_CSV), periods: 2 });
  expect(result.usage).toMatchObject({ events: 6, replayed: 6, rejected: 0 });

  // By hand (unit cost 0.000004 a token, the same usage on both plans):
  //   Jan  large/input 1,000,000 × 0.00001 = 10.00   cost 4.00   margin   6.00
  //        large/output  100,000 × 0.00003 =  3.00   cost 0.40   margin   2.60
  //        mystery/output 50,000 × 0.00002 =  1.00   cost 0.20   margin   0.80   (default price)
  //        small/cached  500,000 × 0.000001 = 0.50   cost 2.00   margin  -1.50   (the {direction: cached} wildcard)
  //        dimensional revenue 14.50, cost 6.60, margin 7.90;  flat 49.00 - 6.60 = 42.40
  //   Feb  small/input 2,000,000 × 0.0000005 = 1.00  cost 8.00   margin  -7.00
  //        small/output 1,000,000 × 0.0000015 = 1.50 cost 4.00   margin  -2.50
  //        dimensional revenue 2.50, cost 12.00, margin -9.50;  flat 49.00 - 12.00 = 37.00
  const [flat, dimensional] = result.plans;
  const figures = (plan: typeof flat) => plan.periods.map((period) => [period.start.slice(0, 7), period.revenue, period.cost, period.margin]);
  expect(figures(flat)).toEqual([
    ['2025-01', '49.00', '6.60', '42.40'],
    ['2025-02', '49.00', '12.00', '37.00'],
  ]);
  expect(figures(dimensional)).toEqual([
    ['2025-01', '14.50', '6.60', '7.90'],
    ['2025-02', '2.50', '12.00', '-9.50'],
  ]);
  expect(dimensional.total).toMatchObject({ invoiced: '17.00', revenue: '17.00', cost: '18.60', margin: '-1.60' });
  expect(flat.total).toMatchObject({ invoiced: '98.00', revenue: '98.00', margin: '79.40' });

  const combinations = (period: (typeof dimensional.periods)[number]) =>
    Object.fromEntries((period.combinations ?? []).map((line) => [line.dimensionKey, [line.revenue, line.cost, line.margin, line.lossMaking]]));
  expect(combinations(dimensional.periods[0])).toEqual({
    'model=large&direction=input': ['10.00', '4.00', '6.00', false],
    'model=large&direction=output': ['3.00', '0.40', '2.60', false],
    'model=mystery&direction=output': ['1.00', '0.20', '0.80', false],
    'model=small&direction=cached': ['0.50', '2.00', '-1.50', true],
  });
  expect(combinations(dimensional.periods[1])).toEqual({
    'model=small&direction=input': ['1.00', '8.00', '-7.00', true],
    'model=small&direction=output': ['1.50', '4.00', '-2.50', true],
  });
  // The flat plan meters the same grouped metric at 0: the same cost per combination, no revenue.
  const costs = (period: (typeof dimensional.periods)[number]) => Object.fromEntries((period.combinations ?? []).map((line) => [line.dimensionKey, line.cost]));
  expect(flat.periods.map(costs)).toEqual(dimensional.periods.map(costs));
  expect(flat.periods.flatMap((period) => period.combinations ?? []).every((line) => line.revenue === '0.00')).toBe(true);

  const table = formatSimulationTable(result, 'inline');
  expect(table).toContain('llm-dimensional vs llm-flat: revenue -81.00 USD, margin -81.00 USD over the 2 periods.');
  expect(table).toContain('llm-dimensional per combination (revenue / cost / margin, USD):');
  expect(table).toContain('  llm_tokens model=small&direction=input: 1.00 / 8.00 / -7.00');
  expect(simulationJson(result).plans[1].periods[0]).toMatchObject({
    combinations: expect.arrayContaining([{ metric_code: 'llm_tokens', dimension_key: 'model=small&direction=cached', quantity: '500000', revenue: '0.50', cost: '2.00', margin: '-1.50', loss_making: true }]),
  });
});
