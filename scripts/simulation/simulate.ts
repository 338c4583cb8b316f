/**
 * Pricing simulation: the same usage replayed on several plans, each as its own subscription, through the REAL
 * API, subscription workflow and activities on a time-skipping Temporal server, against a throwaway Postgres.
 * Nothing is re-implemented: the invoices are the ones billing would write, read back from Postgres, and the
 * revenue, cost and margin per period are the margin report's (store/margins.ts, docs/margins.md).
 *
 *   usage (recorded or generated)       catalog (API bodies or rows)
 *            |                                   |
 *            v                                   v
 *   POST /v1/events (one customer per plan)   POST /v1/metrics, /v1/plans, /v1/customers, /v1/subscriptions
 *            \______________ throwaway API + Postgres _______________/
 *                                   |
 *        worker: subscription workflow + activities on the time-skipping server, advanced a day at a time
 *                                   |
 *        at the horizon: POST /cancel {at: period_end} -> the last period's usage goes on a closing invoice
 *                                   |
 *        invoices + usage closures -> per period: invoices, invoiced, revenue, usage cost, margin
 *
 * The time-skipping server's clock starts at today and only moves forward, so usage from the past is replayed in
 * the future: every instant moves by the same whole number of 4-year steps, which keeps month lengths and leap
 * days exactly as they were (Gregorian years repeat their shape every 4 years within 1901-2099). Results are
 * shifted back before they are shown.
 */
import type { Express } from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../api/app';
import { formatMoney, toDecimal } from '../../domain/money';
import { totalMargin } from '../../domain/margins';
import { addIntervals, billingPeriod, BillingInterval, parseInterval } from '../../domain/periods';
import { planScheduleTerms } from '../../domain/plan-terms';
import { createApiKey } from '../../store/api-keys';
import { copyCatalog, invoicesOfSubscriptions, subscriptionStatuses } from '../../store/bulk-fixtures';
import { findPlanVersion, listMetrics, PlanRow } from '../../store/catalog';
import type { CombinationMargin } from '../../domain/combination-margins';
import { marginReport } from '../../store/margins';
import { CatalogError, CatalogSource } from './catalog';
import type { SimulationStack } from './stack';
import { startOfUtcMonth, UsageRecord } from './usage';

export interface SimulationInput {
  readonly catalog: CatalogSource;
  /** The plans to compare, the first being the reference (`--plan`), then each `--compare`. */
  readonly planCodes: readonly string[];
  readonly usage: readonly UsageRecord[];
  /** Monthly periods to simulate. */
  readonly periods: number;
  /** First period start; the start of the UTC month of the first usage event when absent. */
  readonly start?: Date;
  readonly log?: (line: string) => void;
}

export interface PeriodFigures {
  readonly index: number;
  readonly start: string;
  readonly end: string;
  /** Invoices dated in the period (their period_start): count and total. */
  readonly invoiceCount: number;
  readonly invoiced: string;
  readonly revenue: string;
  readonly cost: string;
  readonly margin: string;
  readonly marginPercent: string | null;
  /** Dimensional charges: the period's revenue, cost and margin per combination, from the margins report. */
  readonly combinations?: readonly CombinationMargin[];
}

export interface SimulatedInvoice {
  readonly number: string | null;
  readonly kind: string;
  readonly status: string;
  readonly periodStart: string;
  readonly periodEnd: string;
  readonly total: string;
}

export interface PlanSimulation {
  readonly planCode: string;
  readonly planVersion: number;
  readonly planName: string;
  readonly currency: string;
  readonly periods: readonly PeriodFigures[];
  readonly total: Omit<PeriodFigures, 'index' | 'start' | 'end'>;
  readonly invoices: readonly SimulatedInvoice[];
}

export interface UsageRejection {
  readonly id: string;
  readonly code: string;
  readonly detail: string;
}

export interface SimulationResult {
  readonly start: string;
  readonly end: string;
  readonly periods: number;
  /** How far the replay ran in the future (a multiple of 4 years; 0 for usage that is not in the past). */
  readonly shiftYears: number;
  readonly usage: {
    readonly events: number;
    readonly replayed: number;
    readonly outsideHorizon: number;
    readonly duplicates: number;
    readonly rejected: number;
    readonly rejections: readonly UsageRejection[];
  };
  /** metric code -> unit cost (null: none set, costs 0). */
  readonly unitCosts: Readonly<Record<string, string | null>>;
  readonly plans: readonly PlanSimulation[];
  /** Wall-clock seconds of the replay (catalog, usage, workflow run and collection). */
  readonly seconds: number;
}

export class SimulationError extends Error {
  override name = 'SimulationError';
}

const MONTH = parseInterval('P1M');
const DAY_MS = 86_400_000;
const EVENTS_PER_REQUEST = 1_000;
const MAX_REJECTIONS_KEPT = 20;

const yearsLater = (instant: Date, years: number): Date => addIntervals(instant, { months: 12, days: 0, milliseconds: 0 }, years);

/** The smallest multiple of 4 years that puts `start` more than a day after `now`. */
export function shiftYearsFor(start: Date, now: Date): number {
  let years = 0;
  while (yearsLater(start, years).getTime() <= now.getTime() + DAY_MS) years += 4;
  return years;
}

interface SimulatedPlan {
  readonly plan: PlanRow;
  readonly subscriptionId: string;
  readonly workflowId: string;
  /** When to ask for the cancellation at period end: after the last period has opened (grace passed). */
  readonly cancelAt: number;
  /** When the closing invoice is due at the latest. */
  readonly doneBy: number;
  cancelRequested: boolean;
}

export async function simulate(stack: SimulationStack, input: SimulationInput): Promise<SimulationResult> {
  const startedAt = process.hrtime.bigint();
  const log = input.log ?? (() => undefined);
  if (!Number.isInteger(input.periods) || input.periods < 1 || input.periods > 120) throw new SimulationError('periods must be a whole number from 1 to 120');
  if (input.planCodes.length === 0) throw new SimulationError('name at least one plan');
  if (new Set(input.planCodes).size !== input.planCodes.length) throw new SimulationError(`a plan is named twice: ${input.planCodes.join(', ')}`);
  const earliest = input.usage.reduce<Date | undefined>((min, event) => (!min || event.timestamp < min ? event.timestamp : min), undefined);
  if (!input.start && !earliest) throw new SimulationError('no usage and no start: give usage, or --start');
  const start = input.start ?? startOfUtcMonth(earliest!);
  const end = addIntervals(start, MONTH, input.periods);
  const inHorizon = input.usage.filter((event) => event.timestamp >= start && event.timestamp < end);

  // Replay in the future of the server's clock, shifted by whole 4-year steps; jump there while nothing runs.
  const serverNow = new Date(await stack.env.currentTimeMs());
  const shiftYears = shiftYearsFor(start, serverNow);
  const shift = (instant: Date): Date => yearsLater(instant, shiftYears);
  const unshift = (instant: Date): Date => yearsLater(instant, -shiftYears);
  const replayStart = shift(start);
  const replayEnd = shift(end);
  const jump = replayStart.getTime() - DAY_MS - serverNow.getTime();
  if (jump > 0) await stack.env.sleep(jump);
  log(`replaying ${start.toISOString().slice(0, 10)} .. ${end.toISOString().slice(0, 10)}${shiftYears ? ` as ${shiftYears} years later` : ''}`);

  const api = await startApi(stack, () => new Date(replayEnd.getTime() + DAY_MS));
  try {
    await loadCatalog(stack, api, input.catalog, input.planCodes);
    const plans: SimulatedPlan[] = [];
    let usageOutcome: Omit<SimulationResult['usage'], 'events' | 'outsideHorizon'> | undefined;
    for (const [index, code] of input.planCodes.entries()) {
      const plan = (await findPlanVersion(stack.db, code))!; // the newest version
      const customer = await api.post('/v1/customers', {
        external_id: `simulation-${index + 1}-${code}`,
        name: `Simulated customer on ${plan.name}`,
        currency: plan.currency,
        payment_method: 'pm_sandbox_ok',
      });
      log(`plan ${code} v${plan.version}: catalog loaded, replaying ${inHorizon.length} events`);
      const outcome = await replayUsage(api, customer.external_id as string, inHorizon, shift);
      usageOutcome ??= outcome; // every plan's customer gets the same events and the same verdicts
      const subscription = await api.post('/v1/subscriptions', { customer_id: customer.id, plan_code: code, plan_version: plan.version, start_at: replayStart.toISOString() });
      plans.push({ plan, subscriptionId: subscription.id as string, workflowId: subscription.workflow_id as string, ...horizonOf(plan, replayStart, replayEnd), cancelRequested: false });
      log(`plan ${code} v${plan.version}: subscription ${subscription.id as string}`);
    }

    await runToHorizon(stack, api, plans, (instant) => log(`  ${unshift(instant).toISOString().slice(0, 7)}`));

    const unitCosts = Object.fromEntries(
      (await listMetrics(stack.db)).map((metric) => [metric.code, metric.unit_cost === null ? null : toDecimal(metric.unit_cost).toString()]),
    );
    const results = await collect(stack, plans, start, input.periods, shift, unshift);
    return {
      start: start.toISOString(),
      end: end.toISOString(),
      periods: input.periods,
      shiftYears,
      usage: { events: input.usage.length, outsideHorizon: input.usage.length - inHorizon.length, ...usageOutcome! },
      unitCosts,
      plans: results,
      seconds: Number(process.hrtime.bigint() - startedAt) / 1e9,
    };
  } finally {
    await api.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The throwaway API, called over HTTP like any client would

interface SimulationApi {
  post(path: string, body: unknown): Promise<Record<string, unknown>>;
  /** The raw answer, for calls whose refusal is an expected outcome. */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }>;
  close(): Promise<void>;
}

async function startApi(stack: SimulationStack, now: () => Date): Promise<SimulationApi> {
  const { key } = await createApiKey(stack.db, { name: 'pricing simulation', role: 'admin' });
  // `now` lies ahead of every replayed event, so the events can be stored before their periods run.
  const app: Express = createApp({ db: stack.db, temporal: stack.client, now, log: () => undefined, rateLimit: false });
  const server: Server = await new Promise((resolve, reject) => {
    const listening = app.listen(0, '127.0.0.1', () => resolve(listening)).on('error', reject);
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    return { status: response.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  };
  return {
    call,
    async post(path, body) {
      const answer = await call('POST', path, body);
      if (answer.status >= 300) {
        const problem = answer.json as { code?: string; detail?: string; errors?: { path: string; message: string }[] };
        const fields = problem.errors?.map((error) => `${error.path}: ${error.message}`).join('; ');
        throw new SimulationError(`POST ${path} was refused (${answer.status} ${problem.code ?? ''}): ${problem.detail ?? ''}${fields ? ` [${fields}]` : ''}`);
      }
      return answer.json;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function loadCatalog(stack: SimulationStack, api: SimulationApi, source: CatalogSource, planCodes: readonly string[]): Promise<void> {
  const offered = source.kind === 'file' ? source.catalog.plans.map((plan) => String(plan.code)) : source.rows.plans.map((plan) => plan.code);
  const missing = planCodes.filter((code) => !offered.includes(code));
  if (missing.length) throw new CatalogError(`the catalog has no plan ${missing.join(', ')}; it offers ${[...new Set(offered)].join(', ') || 'none'}`);

  if (source.kind === 'file') {
    for (const metric of source.catalog.metrics) await api.post('/v1/metrics', metric);
    for (const plan of source.catalog.plans) {
      if (planCodes.includes(String(plan.code))) await api.post('/v1/plans', plan);
    }
    return;
  }
  await copyCatalog(stack.db, source.rows);
}

async function replayUsage(
  api: SimulationApi,
  customer: string,
  usage: readonly UsageRecord[],
  shift: (instant: Date) => Date,
): Promise<Omit<SimulationResult['usage'], 'events' | 'outsideHorizon'>> {
  let replayed = 0;
  let duplicates = 0;
  const rejections: UsageRejection[] = [];
  for (let offset = 0; offset < usage.length; offset += EVENTS_PER_REQUEST) {
    const batch = usage.slice(offset, offset + EVENTS_PER_REQUEST);
    const events = batch.map((event) => ({ id: event.id, customer, type: event.type, timestamp: shift(event.timestamp).toISOString(), properties: event.properties }));
    const answer = await api.call('POST', '/v1/events', { events });
    const body = answer.json as { accepted?: number; duplicates?: number; errors?: { index: number; code: string; detail?: string; message?: string }[] };
    if (answer.status !== 200 && answer.status !== 422) throw new SimulationError(`POST /v1/events: ${answer.status} ${JSON.stringify(answer.json).slice(0, 300)}`);
    replayed += body.accepted ?? 0;
    duplicates += body.duplicates ?? 0;
    for (const error of body.errors ?? []) rejections.push({ id: batch[error.index]?.id ?? String(offset + error.index), code: error.code, detail: error.detail ?? error.message ?? '' });
  }
  return { replayed, duplicates, rejected: rejections.length, rejections: rejections.slice(0, MAX_REJECTIONS_KEPT) };
}

// ---------------------------------------------------------------------------------------------------------------
// Running the periods

/**
 * The subscription's last period is the first one ending at or after the horizon; the cancellation at period end
 * is asked for once that period has opened (its invoice written after the usage grace window).
 */
function horizonOf(plan: PlanRow, replayStart: Date, replayEnd: Date): { cancelAt: number; doneBy: number } {
  const terms = planScheduleTerms(plan);
  const interval = parseInterval(terms.billingInterval);
  if (intervalMs(interval) < DAY_MS) throw new SimulationError(`plan ${plan.code} bills every ${terms.billingInterval}; the simulation needs periods of a day or longer`);
  const anchor = terms.trialPeriod ? addIntervals(replayStart, parseInterval(terms.trialPeriod), 1) : replayStart;
  let index = 0;
  while (billingPeriod(anchor, interval, index).end < replayEnd) index += 1;
  const last = billingPeriod(anchor, interval, index);
  const grace = parseInterval(terms.usageGracePeriod);
  return {
    cancelAt: addIntervals(last.start, grace, 1).getTime() + 60_000,
    doneBy: addIntervals(last.end, grace, 1).getTime() + 2 * DAY_MS,
  };
}

const intervalMs = (interval: BillingInterval): number => interval.months * 28 * DAY_MS + interval.days * DAY_MS + interval.milliseconds;

/** Advances server time a day at a time (so every timer fires in order) until every subscription has ended. */
async function runToHorizon(stack: SimulationStack, api: SimulationApi, plans: SimulatedPlan[], onNewMonth: (serverTime: Date) => void): Promise<void> {
  const deadline = Math.max(...plans.map((plan) => plan.doneBy));
  let lastLoggedMonth = '';
  // Server time is read now and then; in between it is what the steps added (at most a few ms behind the server,
  // which lets real time pass too), so a step costs one round trip to the server.
  let now = await stack.env.currentTimeMs();
  for (let step = 1; ; step += 1) {
    for (const plan of plans.filter((candidate) => !candidate.cancelRequested && now >= candidate.cancelAt)) {
      await cancelAtPeriodEnd(api, plan.subscriptionId);
      plan.cancelRequested = true;
    }
    if (plans.every((plan) => plan.cancelRequested)) {
      const statuses = await subscriptionStatuses(stack.db, plans.map((plan) => plan.subscriptionId));
      if (statuses.every((row) => row.status === 'canceled')) break;
    }
    if (now > deadline) throw new SimulationError('the subscriptions did not end by the horizon; see the worker log');
    const month = new Date(now).toISOString().slice(0, 7);
    if (month !== lastLoggedMonth) onNewMonth(new Date(now));
    lastLoggedMonth = month;
    const nextCancel = Math.min(...plans.filter((plan) => !plan.cancelRequested).map((plan) => plan.cancelAt), Infinity);
    const advance = Math.max(1_000, Math.min(DAY_MS, nextCancel - now));
    await stack.env.sleep(advance);
    now = step % 30 === 0 ? await stack.env.currentTimeMs() : now + advance;
  }
  // A canceled subscription's workflow may still wait to send a win-back offer: nothing left to bill, so end it.
  for (const plan of plans) {
    await stack.client.workflow
      .getHandle(plan.workflowId)
      .terminate('pricing simulation finished')
      .catch(() => undefined);
  }
}

async function cancelAtPeriodEnd(api: SimulationApi, subscriptionId: string): Promise<void> {
  const answer = await api.post(`/v1/subscriptions/${subscriptionId}/cancel`, { at: 'period_end', reason: 'end of the pricing simulation' });
  // A plan with retention terms offers a discount first: decline it, the horizon is the horizon.
  if (answer.status === 'retention_offered') await api.post(`/v1/subscriptions/${subscriptionId}/retention/decline`, {});
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the results back

async function collect(
  stack: SimulationStack,
  plans: readonly SimulatedPlan[],
  start: Date,
  periods: number,
  shift: (instant: Date) => Date,
  unshift: (instant: Date) => Date,
): Promise<PlanSimulation[]> {
  const subscriptionIds = plans.map((plan) => plan.subscriptionId);
  const invoices = await invoicesOfSubscriptions(stack.db, subscriptionIds);
  const windows = Array.from({ length: periods }, (_, index) => billingPeriod(start, MONTH, index));
  const reports = await Promise.all(windows.map((window) => marginReport(stack.db, { from: shift(window.start), to: shift(window.end), subscriptionIds })));

  return plans.map(({ plan, subscriptionId }) => {
    const own = invoices.filter((invoice) => invoice.subscription_id === subscriptionId);
    const money = (value: string): string => formatMoney(toDecimal(value), plan.currency);
    const figures = windows.map((window, index): PeriodFigures => {
      const dated = own.filter((invoice) => invoice.period_start >= shift(window.start) && invoice.period_start < shift(window.end));
      const margin = reports[index].subscriptions.find((row) => row.subscriptionId === subscriptionId);
      return {
        index,
        start: window.start.toISOString(),
        end: window.end.toISOString(),
        invoiceCount: dated.length,
        invoiced: money(dated.reduce((sum, invoice) => sum.plus(toDecimal(invoice.total)), toDecimal('0')).toString()),
        revenue: margin?.revenue ?? money('0'),
        cost: margin?.cost ?? money('0'),
        margin: margin?.margin ?? money('0'),
        marginPercent: margin ? margin.marginPercent : null,
        ...(margin?.combinations?.length ? { combinations: margin.combinations } : {}),
      };
    });
    const sums = totalMargin(plan.currency, figures);
    return {
      planCode: plan.code,
      planVersion: plan.version,
      planName: plan.name,
      currency: plan.currency,
      periods: figures,
      total: {
        invoiceCount: figures.reduce((count, period) => count + period.invoiceCount, 0),
        invoiced: money(figures.reduce((sum, period) => sum.plus(toDecimal(period.invoiced)), toDecimal('0')).toString()),
        revenue: sums.revenue,
        cost: sums.cost,
        margin: sums.margin,
        marginPercent: sums.marginPercent,
      },
      invoices: own.map((invoice) => ({
        number: invoice.number,
        kind: invoice.kind,
        status: invoice.status,
        periodStart: unshift(invoice.period_start).toISOString(),
        periodEnd: unshift(invoice.period_end).toISOString(),
        total: money(invoice.total),
      })),
    };
  });
}
