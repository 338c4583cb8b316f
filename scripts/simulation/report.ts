/** The simulation's results for people (a side-by-side table) and for programs (JSON, snake_case like the API). */
import { combinationMarginJson } from '../../api/routes/reports';
import { Dec, formatMoney, toDecimal, ZERO } from '../../domain/money';
import type { PeriodFigures, PlanSimulation, SimulationResult } from './simulate';

const COLUMNS = ['inv', 'invoiced', 'revenue', 'cost', 'margin', 'margin %'] as const;

function cells(figures: Omit<PeriodFigures, 'index' | 'start' | 'end'>): string[] {
  return [String(figures.invoiceCount), figures.invoiced, figures.revenue, figures.cost, figures.margin, figures.marginPercent ?? '-'];
}

/** A readable table: one row per period and a total, each plan's columns side by side. */
export function formatSimulationTable(result: SimulationResult, usageSource: string): string {
  const label = (period: PeriodFigures): string => period.start.slice(0, period.start.slice(8, 10) === '01' ? 7 : 10);
  const rows: string[][] = result.plans[0].periods.map((period, index) => [label(period), ...result.plans.flatMap((plan) => cells(plan.periods[index]))]);
  const total = ['total', ...result.plans.flatMap((plan) => cells(plan.total))];
  const header = ['period', ...result.plans.flatMap(() => [...COLUMNS])];
  const widths = header.map((title, column) => Math.max(title.length, total[column].length, ...rows.map((row) => row[column].length)));
  const groupWidth = (plan: number): number => COLUMNS.reduce((width, _, offset) => width + widths[1 + plan * COLUMNS.length + offset], 0) + (COLUMNS.length - 1) * 2;

  const line = (row: string[]): string =>
    [row[0].padEnd(widths[0]), ...result.plans.map((_, plan) => row.slice(1 + plan * COLUMNS.length, 1 + (plan + 1) * COLUMNS.length).map((cell, offset) => cell.padStart(widths[1 + plan * COLUMNS.length + offset])).join('  '))].join(' | ');
  const titles = [''.padEnd(widths[0]), ...result.plans.map((plan, index) => planTitle(plan).slice(0, groupWidth(index)).padEnd(groupWidth(index)))].join(' | ');
  const rule = [widths[0], ...result.plans.map((_, index) => groupWidth(index))].map((width) => '-'.repeat(width)).join('-+-');

  const usage = result.usage;
  const costs = Object.entries(result.unitCosts).map(([code, cost]) => `${code} ${cost ?? 'not set (0)'}`).join(', ');
  const out = [
    `Pricing simulation: ${result.periods} monthly period${result.periods === 1 ? '' : 's'}, ${result.start.slice(0, 10)} to ${result.end.slice(0, 10)}` +
      (result.shiftYears ? ` (replayed ${result.shiftYears} years later on the time-skipping server, shown at the original dates)` : ''),
    `Usage: ${usageSource}: ${usage.events} events, ${usage.replayed} replayed per plan` +
      `${usage.outsideHorizon ? `, ${usage.outsideHorizon} outside the periods` : ''}${usage.duplicates ? `, ${usage.duplicates} duplicates` : ''}${usage.rejected ? `, ${usage.rejected} rejected` : ''}`,
    `Unit costs: ${costs || 'no metrics'}`,
    '',
    titles,
    line(header),
    rule,
    ...rows.map(line),
    rule,
    line(total),
    '',
    'inv/invoiced: invoices dated in the period (its fees in advance, the previous period\'s usage in arrears).',
    'revenue/cost/margin: the period\'s own fees and usage, and what that usage cost (docs/margins.md).',
  ];
  const reference = result.plans[0];
  for (const plan of result.plans.slice(1)) {
    if (plan.currency !== reference.currency) continue;
    const revenue = toDecimal(plan.total.revenue).minus(toDecimal(reference.total.revenue));
    const margin = toDecimal(plan.total.margin).minus(toDecimal(reference.total.margin));
    const signed = (value: ReturnType<typeof toDecimal>): string => `${value.isNegative() ? '' : '+'}${value.toFixed(plan.total.revenue.split('.')[1]?.length ?? 0)}`;
    out.push(`${plan.planCode} vs ${reference.planCode}: revenue ${signed(revenue)} ${plan.currency}, margin ${signed(margin)} ${plan.currency} over the ${result.periods} periods.`);
  }
  for (const plan of result.plans) out.push(...combinationTotals(plan));
  for (const rejection of usage.rejections) out.push(`rejected event ${rejection.id}: ${rejection.code} ${rejection.detail}`);
  return out.map((text) => text.trimEnd()).join('\n');
}

/** A dimensional plan's revenue, cost and margin per combination over all periods (the margins report's figures). */
function combinationTotals(plan: PlanSimulation): string[] {
  const totals = new Map<string, { revenue: Dec; cost: Dec; margin: Dec }>();
  for (const period of plan.periods) {
    for (const line of period.combinations ?? []) {
      const key = `${line.metricCode} ${line.dimensionKey}`;
      const total = totals.get(key) ?? { revenue: ZERO, cost: ZERO, margin: ZERO };
      totals.set(key, { revenue: total.revenue.plus(toDecimal(line.revenue)), cost: total.cost.plus(toDecimal(line.cost)), margin: total.margin.plus(toDecimal(line.margin)) });
    }
  }
  if (totals.size === 0) return [];
  const money = (value: Dec): string => formatMoney(value, plan.currency);
  return [
    `${plan.planCode} per combination (revenue / cost / margin, ${plan.currency}):`,
    ...[...totals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, total]) => `  ${key}: ${money(total.revenue)} / ${money(total.cost)} / ${money(total.margin)}`),
  ];
}

function planTitle(plan: PlanSimulation): string {
  return `${plan.planCode} v${plan.planVersion} (${plan.currency})`;
}

function figuresJson(figures: Omit<PeriodFigures, 'index' | 'start' | 'end'>) {
  return {
    invoices: figures.invoiceCount,
    invoiced: figures.invoiced,
    revenue: figures.revenue,
    cost: figures.cost,
    margin: figures.margin,
    margin_percent: figures.marginPercent,
    ...('combinations' in figures && figures.combinations
      ? {
          combinations: figures.combinations.map(combinationMarginJson),
        }
      : {}),
  };
}

export function simulationJson(result: SimulationResult) {
  return {
    start: result.start,
    end: result.end,
    periods: result.periods,
    shift_years: result.shiftYears,
    usage: {
      events: result.usage.events,
      replayed: result.usage.replayed,
      outside_horizon: result.usage.outsideHorizon,
      duplicates: result.usage.duplicates,
      rejected: result.usage.rejected,
      rejections: result.usage.rejections,
    },
    unit_costs: result.unitCosts,
    plans: result.plans.map((plan) => ({
      code: plan.planCode,
      version: plan.planVersion,
      name: plan.planName,
      currency: plan.currency,
      periods: plan.periods.map((period) => ({ index: period.index, start: period.start, end: period.end, ...figuresJson(period) })),
      total: figuresJson(plan.total),
      invoices: plan.invoices.map((invoice) => ({
        number: invoice.number,
        kind: invoice.kind,
        status: invoice.status,
        period_start: invoice.periodStart,
        period_end: invoice.periodEnd,
        total: invoice.total,
      })),
    })),
    seconds: Math.round(result.seconds * 100) / 100,
  };
}
