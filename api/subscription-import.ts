/**
 * Bulk import of subscriptions that already run in another system: each row keeps its billing anchor and the start
 * of its current period, which the other system has already invoiced. The subscription's workflow starts inside
 * that period as a carried run (no period-0 invoice, no trial): its first workflow task only sets the period-end
 * timer, and at the period's end it bills as any renewal does (the next period's fees, this period's usage).
 *
 * Idempotent per external id: the subscription id derives from it, the workflow start refuses a second run of
 * the same id, and the row insert skips an external id already there. A rerun reports those rows `existing`.
 * Order per batch: the workflows start first (bounded concurrency), then one statement inserts the rows of the
 * started ones, so a row never exists without its workflow; a crash in between leaves workflows whose rows the
 * rerun writes (their first task touches no table, so nothing runs on a missing row before then), but only for a
 * row that matches what its workflow was started with: a row edited in between is rejected `external_id_conflict`
 * and nothing is written for it.
 *
 * `POST /v1/subscriptions/import` and `npm run import -- file.csv` both call `importSubscriptions`.
 */
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { z } from 'zod';
import { billingPeriod, billingPeriodAt, parseInterval } from '../domain/periods';
import { planScheduleTerms } from '../domain/plan-terms';
import type { PlanRow } from '../store/catalog';
import type { Database } from '../store/database';
import {
  findImportCustomers,
  findImportedSubscriptions,
  findPlanVersionsByCode,
  ImportCustomer,
  ImportedSubscription,
  insertImportedSubscriptions,
} from '../store/subscription-imports';
import { CarriedState, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionWorkflowId, SubscriptionWorkflowInput } from '../workflows/definitions';
import { subscriptionStartOptions } from './subscription-start';
import { uuidFromRequestId } from './idempotency';
import type { ApiProblem, ProblemCode } from './problem';
import { meteredOverlapProblem } from './metered-overlap';
import { lockCustomersForMeteredCheck, meteredOverlapsOfEach } from '../store/metered-overlaps';
import { pricedEventTypesOf } from '../store/usage';
import { SubscriptionStart, uncoveredUsageBeforeEach } from '../store/uncovered-usage';
import type { Knex } from 'knex';
import { instant, uncoveredUsageSummary } from './schemas';
import { uncoveredUsageJson } from './serializers';

/** Most rows one request (or one batch of the command) carries; the command splits a file into such batches. */
export const IMPORT_BATCH_LIMIT = 1000;
/** Workflow starts in flight at once: enough to hide the start RPC's latency, few enough not to swamp the server. */
export const DEFAULT_START_CONCURRENCY = 64;

/**
 * A name the row is matched or stored by. The API's input guard refuses NUL and lone surrogates for every request,
 * but the CSV command reaches here without it: one such cell failed the batch's lookup in Postgres (text cannot
 * hold NUL) and so the whole import, instead of rejecting that one row.
 */
const storableText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((text) => !text.includes('\u0000') && (text as string & { isWellFormed(): boolean }).isWellFormed(), { message: 'must not contain NUL characters or lone UTF-16 surrogates' });

/** The first instant calendar math counts periods from as written (see billing_anchor below). */
const FIRST_CALENDAR_ANCHOR_MS = Date.parse('0100-01-01T00:00:00Z');

export const importRowSchema = z
  .strictObject({
    external_id: storableText(200),
    customer_id: z.uuid().optional(),
    customer_external_id: storableText(200).optional(),
    plan_code: storableText(100),
    plan_version: z.int().positive().optional(),
    // Years 0001-9999 in UTC (api/schemas.ts instant): an anchor in year 0 passed the period alignment and started
    // a workflow carrying it as toISOString writes it ("0000-12-31T23:00:00.000Z" for "0001-01-01T00:00:00+01:00").
    // And from year 100 on: calendar math (domain/periods.ts addIntervals, through Date.UTC) reads years 0-99 as
    // 1900-1999, so an anchor in year 50 put every boundary 1,900 years later, and placing the row stepped back over
    // them one period at a time on the API's thread (an hourly plan: 16.6 million steps, some 20 s per row). That
    // trap is gone from domain/periods.ts; the rule stays, as an anchor in year 0001-0099 is a typo for a real year.
    billing_anchor: instant.refine((value) => Date.parse(value) >= FIRST_CALENDAR_ANCHOR_MS, { message: 'must fall in year 0100 or later (in UTC)' }),
    current_period_start: instant,
  })
  .refine((row) => (row.customer_id === undefined) !== (row.customer_external_id === undefined), {
    message: 'give exactly one of customer_id and customer_external_id',
    path: ['customer_id'],
  });
export type ImportRow = z.infer<typeof importRowSchema>;

export const importSubscriptionsBody = z.strictObject({
  rows: z.array(z.unknown()).min(1).max(IMPORT_BATCH_LIMIT),
});

/** The body as documented (api/openapi-routes.ts): rows are parsed one by one, so one bad row rejects only itself. */
export const importSubscriptionsDocumentedBody = z.strictObject({
  rows: z.array(importRowSchema).min(1).max(IMPORT_BATCH_LIMIT),
});

/** The answer: counts and one report line per row, in the order submitted. */
export const importSubscriptionsResponse = z.object({
  created: z.int().nonnegative(),
  existing: z.int().nonnegative(),
  rejected: z.int().nonnegative(),
  rows: z.array(
    z.object({
      row: z.int().nonnegative(),
      external_id: z.string().nullable(),
      subscription_id: z.uuid().nullable(),
      status: z.enum(['created', 'existing', 'rejected']),
      code: z.string().optional(),
      detail: z.string().optional(),
      uncovered_usage: uncoveredUsageSummary.optional().meta({
        description:
          'Stored events of types the plan prices, stamped before current_period_start, that no subscription bills (GET /v1/customers/:id/uncovered-usage lists them): usage metered here before the import, which nothing here will bill. Absent when there are none; a rerun reports the same.',
      }),
    }),
  ),
});

export type ImportStatus = 'created' | 'existing' | 'rejected';

export interface ImportRowReport {
  /** Position of the row in what was submitted (0-based), so a report line points back at its input. */
  readonly row: number;
  readonly external_id: string | null;
  readonly subscription_id: string | null;
  readonly status: ImportStatus;
  readonly code?: ProblemCode;
  readonly detail?: string;
  /** Created or existing rows: the customer's stored events the subscription's start leaves unbilled (absent: none). */
  readonly uncovered_usage?: { readonly events: number; readonly earliest: string };
}

export interface ImportDeps {
  readonly db: Database;
  readonly temporal: Client;
  readonly startConcurrency?: number;
  /** The clock that decides whether a current period has already ended (tests move it). */
  readonly now?: () => Date;
}

/** The subscription id an external id imports as: the same on every rerun. */
export function importedSubscriptionId(externalId: string): string {
  return uuidFromRequestId(`subscription-import:${externalId}`);
}

/**
 * Imports one batch (at most IMPORT_BATCH_LIMIT rows); `firstRow` numbers the report when a file is split, and
 * `seen` (the external ids of the file's earlier batches, added to here) makes a copy in a later batch a duplicate
 * as one in the same batch is: else it was reported `existing`, its own customer and plan dropped unnoticed.
 */
export async function importSubscriptions(deps: ImportDeps, rows: readonly unknown[], firstRow = 0, seen: Set<string> = new Set()): Promise<ImportRowReport[]> {
  const reports: (ImportRowReport | undefined)[] = new Array(rows.length);
  const reject = (index: number, externalId: string | null, code: ProblemCode, detail: string): void => {
    reports[index] = { row: firstRow + index, external_id: externalId, subscription_id: null, status: 'rejected', code, detail };
  };

  const parsed: { index: number; row: ImportRow }[] = [];
  rows.forEach((raw, index) => {
    const result = importRowSchema.safeParse(raw);
    const externalId = typeof (raw as { external_id?: unknown })?.external_id === 'string' ? (raw as { external_id: string }).external_id : null;
    if (!result.success) return reject(index, externalId, 'validation_failed', result.error.issues.map((issue) => `${issue.path.join('.') || 'row'}: ${issue.message}`).join('; '));
    if (seen.has(result.data.external_id)) return reject(index, externalId, 'duplicate_external_id', 'the same external_id appears earlier in this batch or file');
    seen.add(result.data.external_id);
    parsed.push({ index, row: result.data });
  });

  // Three queries for the whole batch: customers, plans, and the external ids already imported.
  const [customers, plans, imported] = await Promise.all([
    findImportCustomers(deps.db, parsed.flatMap(({ row }) => (row.customer_id ? [row.customer_id] : [])), parsed.flatMap(({ row }) => (row.customer_external_id ? [row.customer_external_id] : []))),
    findPlanVersionsByCode(deps.db, parsed.map(({ row }) => row.plan_code)),
    findImportedSubscriptions(deps.db, parsed.map(({ row }) => row.external_id)),
  ]);
  const customerById = new Map(customers.map((customer) => [customer.id, customer]));
  const customerByExternalId = new Map(customers.map((customer) => [customer.external_id, customer]));
  const now = (deps.now ?? (() => new Date()))();

  const toStart: RowToStart[] = [];
  // The start of each created or existing row, by its index: what its report says it leaves unbilled.
  const startsByIndex = new Map<number, SubscriptionStart>();
  for (const { index, row } of parsed) {
    const existing = imported.get(row.external_id);
    if (existing) {
      reports[index] = { row: firstRow + index, external_id: row.external_id, subscription_id: existing.id, status: 'existing' };
      startsByIndex.set(index, existing);
      continue;
    }
    const customer = row.customer_id ? customerById.get(row.customer_id) : customerByExternalId.get(row.customer_external_id!);
    if (!customer) {
      reject(index, row.external_id, 'customer_not_found', `no customer ${row.customer_id ?? row.customer_external_id}`);
      continue;
    }
    const plan = plans.find((candidate) => candidate.code === row.plan_code && (row.plan_version === undefined || candidate.version === row.plan_version));
    if (!plan) {
      reject(index, row.external_id, 'plan_not_found', `no plan ${row.plan_code}${row.plan_version ? ` version ${row.plan_version}` : ''}`);
      continue;
    }
    const placed = placeImportedRow(row, plan, customer, now);
    if ('code' in placed) {
      reject(index, row.external_id, placed.code, placed.detail);
      continue;
    }
    toStart.push({ index, plan, customer, ...placed });
  }

  // Checked, started and inserted under the customers' locks (api/metered-overlap.ts): a subscription created for one
  // of them meanwhile (the API, another import) is checked after this batch's rows are in, or before, never beside.
  const started: typeof toStart = [];
  const inserted = await deps.db.transaction(async (trx) => {
    await lockCustomersForMeteredCheck(trx, toStart.map((item) => item.customer.id));
    const accepted = await withoutMeteredOverlaps(trx, toStart, (item, problem) => reject(item.index, item.subscription.externalId, problem.code, problem.detail));
    await startImportedWorkflows(deps, accepted, started, reject);
    return insertImportedSubscriptions(trx, started.map((item) => item.subscription));
  });
  for (const item of started) {
    const { id, externalId } = item.subscription;
    reports[item.index] = { row: firstRow + item.index, external_id: externalId, subscription_id: id, status: inserted.has(id) ? 'created' : 'existing' };
    startsByIndex.set(item.index, { customerId: item.subscription.customerId, planId: item.subscription.planId, startAt: item.subscription.currentPeriodStart });
  }
  return withUncoveredUsage(deps.db, reports as ImportRowReport[], startsByIndex);
}

/**
 * The reports with what each row's start leaves unbilled, as POST /v1/subscriptions answers it: a migration that
 * meters first and imports after has the customer's earlier events accepted and billed by nothing. Read after the
 * batch's rows are stored (each judged against all of them), in a few statements for the whole batch.
 */
async function withUncoveredUsage(db: Database, reports: readonly ImportRowReport[], startsByIndex: ReadonlyMap<number, SubscriptionStart>): Promise<ImportRowReport[]> {
  const indexes = [...startsByIndex.keys()];
  const uncovered = await uncoveredUsageBeforeEach(db, indexes.map((index) => startsByIndex.get(index)!));
  const byIndex = new Map(indexes.map((index, position) => [index, uncovered[position]]));
  return reports.map((report, index) => {
    const found = byIndex.get(index);
    return found ? { ...report, ...uncoveredUsageJson(found) } : report;
  });
}

type RowToStart = { index: number; subscription: ImportedSubscription; input: SubscriptionWorkflowInput; plan: PlanRow; customer: ImportCustomer };

/**
 * The rows that price no event type another subscription of their customer prices from their current period on:
 * one already stored, or an earlier row of this batch (each row runs on with no end). The others are refused.
 */
async function withoutMeteredOverlaps(trx: Knex.Transaction, rows: readonly RowToStart[], refuse: (row: RowToStart, problem: ApiProblem) => void): Promise<RowToStart[]> {
  const candidates = rows.map(({ subscription }) => ({ customerId: subscription.customerId, planId: subscription.planId, from: subscription.currentPeriodStart, subscriptionId: subscription.id }));
  const [stored, eventTypesByPlan] = [await meteredOverlapsOfEach(trx, candidates), await pricedEventTypesOf(trx, rows.map((row) => row.plan.id))];
  const acceptedByCustomer = new Map<string, RowToStart[]>();
  const accepted: RowToStart[] = [];
  rows.forEach((row, position) => {
    const types = eventTypesByPlan.get(row.plan.id) ?? new Set<string>();
    const earlier = (acceptedByCustomer.get(row.customer.id) ?? [])
      .map((other) => ({ subscriptionId: other.subscription.id, eventTypes: [...(eventTypesByPlan.get(other.plan.id) ?? [])].filter((type) => types.has(type)).sort() }))
      .find((overlap) => overlap.eventTypes.length > 0);
    const overlap = stored[position][0] ?? earlier;
    if (overlap) return refuse(row, meteredOverlapProblem(overlap));
    acceptedByCustomer.set(row.customer.id, [...(acceptedByCustomer.get(row.customer.id) ?? []), row]);
    accepted.push(row);
  });
  return accepted;
}

/** Starts the rows' workflows, bounded in flight; `started` gets the rows whose workflow runs as the row says. */
async function startImportedWorkflows(deps: ImportDeps, toStart: readonly RowToStart[], started: RowToStart[], reject: (index: number, externalId: string | null, code: ProblemCode, detail: string) => void): Promise<void> {
  // Starts in flight at once, bounded; a start the server refuses because the run exists is a rerun's row.
  await forEachConcurrently(toStart, deps.startConcurrency ?? DEFAULT_START_CONCURRENCY, async (item) => {
    try {
      // Never a second run for the same id, even after the first one ended (a canceled imported subscription).
      await deps.temporal.workflow.start(
        SUBSCRIPTION_WORKFLOW_TYPE,
        subscriptionStartOptions(item.subscription.workflowId, item.input, item.plan, item.customer, { status: 'active', periodEnd: item.subscription.currentPeriodEnd }),
      );
      started.push(item);
    } catch (error) {
      if (!(error instanceof WorkflowExecutionAlreadyStartedError)) {
        reject(item.index, item.subscription.externalId, 'workflow_unavailable', `could not start the subscription workflow: ${(error as Error).message}`);
        return;
      }
      // An earlier import started it and never stored its row (a crash in between). Its row is written now only if
      // that workflow bills what this row says: else the row would name a customer, plan or period the workflow
      // does not bill.
      let difference: string | null;
      try {
        difference = await differenceFromStartedRun(deps.temporal, item.subscription.workflowId, item.input);
      } catch (readError) {
        reject(item.index, item.subscription.externalId, 'workflow_unavailable', `could not read the workflow an earlier import started: ${(readError as Error).message}`);
        return;
      }
      if (difference === null) started.push(item);
      else reject(item.index, item.subscription.externalId, 'external_id_conflict', `an earlier import started workflow ${item.subscription.workflowId} for this external_id and never stored its row, and ${difference}; import the row as it was then and change the subscription over the API afterwards, or terminate that workflow and import the row under another external_id`);
    }
  });
}

/**
 * The row's current period on the plan's calendar: its start must be a period boundary of the billing anchor, and
 * the period must not have ended, nor lie a whole period ahead of now (either way periods would be billed by nobody).
 */
function placeImportedRow(
  row: ImportRow,
  plan: PlanRow,
  customer: ImportCustomer,
  now: Date,
): { subscription: ImportedSubscription; input: SubscriptionWorkflowInput } | { code: ProblemCode; detail: string } {
  if (plan.currency !== customer.currency) return { code: 'currency_mismatch', detail: `plan bills in ${plan.currency}, customer pays in ${customer.currency}` };
  const anchor = new Date(row.billing_anchor);
  const periodStart = new Date(row.current_period_start);
  if (periodStart < anchor) return { code: 'period_not_aligned', detail: 'current_period_start is before billing_anchor' };
  const interval = parseInterval(plan.billing_interval);
  const period = billingPeriodAt(anchor, interval, periodStart);
  if (period.start.getTime() !== periodStart.getTime()) {
    return { code: 'period_not_aligned', detail: `current_period_start is not a period boundary of billing_anchor on a ${plan.billing_interval} plan (nearest before: ${period.start.toISOString()})` };
  }
  if (period.end <= now) return { code: 'period_already_ended', detail: `the current period ended at ${period.end.toISOString()}` };
  // Nor start whole periods ahead: the periods between now and it would be billed by nobody (the first invoice comes
  // at its end) and usage refused until it began. One ahead is fine: now is in the period before, invoiced in advance.
  if (period.index > 0) {
    const previousStart = billingPeriod(anchor, interval, period.index - 1).start;
    if (previousStart > now) {
      return { code: 'period_not_aligned', detail: `current_period_start is more than one period ahead of now: the period from ${previousStart.toISOString()} would be billed by nobody` };
    }
  }
  const id = importedSubscriptionId(row.external_id);
  const workflowId = subscriptionWorkflowId(id);
  const carried: CarriedState = {
    status: 'active',
    billingAnchor: anchor.toISOString(),
    periodIndex: period.index,
    periodOpened: true, // invoiced by the system it came from
    usageOpenSince: period.start.toISOString(),
    usagePlanId: plan.id,
    pendingCancellation: null,
    scheduledChange: null,
    discount: null,
    timeline: [{ at: now.toISOString(), event: 'imported', detail: row.external_id }],
    // No patch flags: the run takes its code's patches itself, at its first task (workflows/subscription/patch-ids.ts).
  };
  return {
    subscription: { id, externalId: row.external_id, customerId: customer.id, planId: plan.id, workflowId, currentPeriodStart: period.start, currentPeriodEnd: period.end },
    input: { subscriptionId: id, customerId: customer.id, ...(customer.name ? { customerName: customer.name } : {}), plan: planScheduleTerms(plan), startAt: anchor.toISOString(), carried },
  };
}

/**
 * How the workflow an earlier import started for this subscription differs from the row imported now (customer,
 * plan version, billing anchor, current period), or null when it bills the same. Read from the input of the run
 * chain's first run, which later runs never change.
 */
async function differenceFromStartedRun(temporal: Client, workflowId: string, input: SubscriptionWorkflowInput): Promise<string | null> {
  const { raw } = await temporal.workflow.getHandle(workflowId).describe();
  const firstRunId = raw.workflowExecutionInfo?.firstRunId || undefined;
  const history = await temporal.workflow.getHandle(workflowId, firstRunId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`the first run of ${workflowId} has no input`);
  const startedWith = temporal.options.loadedDataConverter.payloadConverter.fromPayload<SubscriptionWorkflowInput>(payload);
  const fields: [string, unknown, unknown][] = [
    ['customer', startedWith.customerId, input.customerId],
    ['plan', startedWith.carried?.usagePlanId, input.carried?.usagePlanId],
    ['billing_anchor', startedWith.carried?.billingAnchor, input.carried?.billingAnchor],
    ['current_period_start', startedWith.carried?.usageOpenSince, input.carried?.usageOpenSince],
  ];
  const differing = fields.filter(([, before, now]) => before !== now);
  if (differing.length === 0) return null;
  return `it was started with a different ${differing.map(([name, before, now]) => `${name} (${String(before)}, not ${String(now)})`).join(', ')}`;
}

async function forEachConcurrently<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next];
      next += 1;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
}
