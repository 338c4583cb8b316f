/**
 * The invariants every lifecycle-simulation scenario must keep, checked against what the API and Postgres show
 * once the scenario is over, with the reference model's expectations (reference-model.ts):
 *
 * 1. each accepted event is billed exactly once (claimed by the usage closure the model expects, and that
 *    closure billed by exactly one invoice) or listed as late (GET /late-usage), never both, never neither;
 * 2. each invoice's total equals the reference's to the minor unit, and no invoice exists that it does not expect;
 * 3. no period is left without its invoice once its grace window (plus a bound for dunning and restarts) is over;
 * 4. at most one successful charge per invoice in the sandbox gateway's ledger, and every invoice of a payment
 *    method that eventually pays is paid;
 * 5. every update the API answered as done took effect: pauses and resumes show on the timeline, cancellations
 *    end the subscription when the model says, plan changes leave the plan the model says.
 */
import path from 'node:path';
import { saveFailedHistory } from './histories';
import type { Json } from './http';
import { invoiceKey, referenceBilling, ReferenceResult } from './reference-model';
import type { RunSubscription, ScenarioRun, SimulationSystem } from './scenario-runner';

/** How long after its due time an invoice may still be missing (dunning holds, worker restarts, a busy server). */
const LATE_INVOICE_BOUND_MS = 15 * 60_000;
/** How far the recorded cancellation may trail the model's instant (activities run in real time while time is locked). */
const CANCEL_SLACK_MS = 10 * 60_000;
const PAYING_METHODS = new Set(['pm_sandbox_ok', 'pm_sandbox_lost_response', 'pm_sandbox_slow']);

export interface ScenarioVerdict {
  readonly seed: number;
  readonly failures: readonly string[];
  readonly counts: { readonly invoices: number; readonly events: number; readonly lateEvents: number; readonly operations: number };
}

export async function checkScenario(system: SimulationSystem, run: ScenarioRun): Promise<ScenarioVerdict> {
  const failures: string[] = [];
  const counts = { invoices: 0, events: 0, lateEvents: 0, operations: run.scenario.operations.length };
  for (const subscription of run.subscriptions) {
    const say = (message: string): void => {
      failures.push(`subscription ${subscription.spec.index} (${subscription.spec.customer}, ${subscription.subscriptionId}): ${message}`);
    };
    const before = failures.length;
    for (const anomaly of subscription.anomalies) say(`unexpected answer: ${anomaly}`);
    const reference = referenceBilling({ startAt: subscription.spec.startAt, planCode: subscription.spec.planCode, paymentMethod: subscription.spec.paymentMethod, log: subscription.log, until: run.scenario.checkAt });
    const invoices = await checkInvoices(system, subscription, reference, say);
    await checkEvents(system, subscription, reference, invoices, say);
    await checkCharges(system, subscription, invoices, say);
    await checkUpdates(system, subscription, reference, say);
    if (failures.length > before) failures.push(`subscription ${subscription.spec.index} as it stands: ${await describeStanding(system, subscription)}`);
    if (failures.length > before && process.env.SIM_VERBOSE) failures.push(`subscription ${subscription.spec.index} operation log:\n${describeLog(subscription)}`);
    counts.invoices += invoices.length;
    counts.events += reference.events.size;
    counts.lateEvents += [...reference.events.values()].filter((expectation) => !expectation.billed).length;
  }
  return { seed: run.scenario.seed, failures, counts };
}

type Say = (message: string) => void;

async function checkInvoices(system: SimulationSystem, subscription: RunSubscription, reference: ReferenceResult, say: Say): Promise<Json[]> {
  const list = await system.api.call('GET', `/v1/invoices?subscription_id=${subscription.subscriptionId}&limit=200`);
  const invoices: Json[] = await Promise.all(list.json.data.map(async (invoice: Json) => (await system.api.call('GET', `/v1/invoices/${invoice.id}`)).json));
  const actual = new Map<string, Json>(invoices.map((invoice) => [invoiceKey(invoice.kind, invoice.period_start), invoice]));
  const now = system.now().getTime();
  for (const expected of reference.invoices) {
    const key = invoiceKey(expected.kind, expected.periodStart);
    const invoice = actual.get(key);
    actual.delete(key);
    if (!invoice) {
      const overdue = now - expected.dueAt.getTime();
      if (expected.kind === 'period' && overdue > LATE_INVOICE_BOUND_MS) {
        say(`the period starting ${expected.periodStart} has no invoice, ${Math.round(overdue / 60_000)} min after its grace window ended (${expected.dueAt.toISOString()}); expected total ${expected.total}`);
      } else if (overdue > LATE_INVOICE_BOUND_MS) {
        say(`missing ${expected.kind} invoice ${expected.periodStart} (due ${expected.dueAt.toISOString()}), expected total ${expected.total}`);
      }
      continue;
    }
    if (invoice.total !== expected.total) {
      const show = (lines: readonly { kind: string; amount: string; quantity: string; period_start?: string; periodStart?: string }[]): string =>
        lines.map((line) => `${line.kind} ${line.quantity} ${line.amount} @${line.period_start ?? line.periodStart}`).join('; ');
      say(`${key} totals ${invoice.total}, the reference ${expected.total}\n      billed:   ${show(invoice.lines)}\n      expected: ${show(expected.lines)}`);
    }
  }
  for (const [key, invoice] of actual) say(`unexpected invoice ${key} ${invoice.number} total ${invoice.total} (the reference has no such invoice)`);
  return invoices;
}

async function checkEvents(system: SimulationSystem, subscription: RunSubscription, reference: ReferenceResult, invoices: readonly Json[], say: Say): Promise<void> {
  const stored: { event_id: string; closure_start: Date | null }[] = await system.db('usage_events as e')
    .leftJoin('usage_period_closures as c', 'c.id', 'e.period_close_id')
    .where('e.customer_id', subscription.customerId)
    .select('e.event_id', 'c.period_start as closure_start');
  const late = await system.api.call('GET', `/v1/subscriptions/${subscription.subscriptionId}/late-usage`);
  const listedLate = new Set<string>((late.json?.data ?? []).map((event: Json) => event.id));
  const claimedIn = new Map(stored.map((row) => [row.event_id, row.closure_start ? row.closure_start.toISOString() : null]));
  // Which invoices bill each closed stretch: its usage lines carry the stretch's start.
  const billingInvoices = new Map<string, Set<string>>();
  for (const invoice of invoices) {
    for (const line of invoice.lines ?? []) {
      if (line.kind !== 'usage') continue;
      billingInvoices.set(line.period_start, (billingInvoices.get(line.period_start) ?? new Set()).add(`${invoice.kind} ${invoice.number}`));
    }
  }
  for (const [eventId, expectation] of reference.events) {
    const claimed = claimedIn.get(eventId);
    if (claimed === undefined) {
      say(`event ${eventId} was answered accepted but is not stored`);
      continue;
    }
    if (expectation.billed) {
      if (claimed !== expectation.stretchStart) say(`event ${eventId} should be billed in the usage from ${expectation.stretchStart} (${expectation.invoiceKey}), ${claimed ? `is claimed by the usage from ${claimed}` : listedLate.has(eventId) ? 'is listed as late' : 'is neither billed nor listed as late'}`);
      const billers = claimed ? billingInvoices.get(claimed) : undefined;
      if (claimed && (billers?.size ?? 0) !== 1) say(`event ${eventId}'s usage from ${claimed} is billed by ${billers?.size ?? 0} invoices (${[...(billers ?? [])].join(', ')}), not exactly one`);
    } else if (claimed) {
      say(`event ${eventId} arrived after its period closed (late), yet is billed in the usage from ${claimed}`);
    } else if (!listedLate.has(eventId)) {
      say(`event ${eventId} is neither billed nor listed as late`);
    }
    if (claimed && listedLate.has(eventId)) say(`event ${eventId} is billed and also listed as late`);
  }
  const acceptedIds = new Set(reference.events.keys());
  for (const row of stored) if (!acceptedIds.has(row.event_id)) say(`event ${row.event_id} is stored although every send of it was answered as rejected`);
}

async function checkCharges(system: SimulationSystem, subscription: RunSubscription, invoices: readonly Json[], say: Say): Promise<void> {
  if (invoices.length === 0) return;
  const rows: { reference: string; successes: string }[] = await system.db('sandbox_gateway_charges')
    .whereIn('reference', invoices.map((invoice) => invoice.id))
    .andWhere('status', 'succeeded')
    .groupBy('reference')
    .select('reference', system.db.raw('count(*) AS successes'));
  const successes = new Map(rows.map((row) => [row.reference, Number(row.successes)]));
  for (const invoice of invoices) {
    const count = successes.get(invoice.id) ?? 0;
    if (count > 1) say(`invoice ${invoice.number} (${invoice.kind} ${invoice.period_start}) was charged successfully ${count} times`);
    if (PAYING_METHODS.has(subscription.spec.paymentMethod) && Number(invoice.total) > 0 && invoice.status !== 'paid') {
      say(`invoice ${invoice.number} (${invoice.kind} ${invoice.period_start}, ${invoice.total}) is ${invoice.status}, although ${subscription.spec.paymentMethod} pays`);
    }
  }
}

async function checkUpdates(system: SimulationSystem, subscription: RunSubscription, reference: ReferenceResult, say: Say): Promise<void> {
  const answer = await system.api.call('GET', `/v1/subscriptions/${subscription.subscriptionId}`);
  const row = answer.json;
  if (reference.endedAt) {
    if (row.status !== 'canceled') say(`a cancellation was answered as done, but the subscription is ${row.status} (it should have ended at ${reference.endedAt.toISOString()})`);
    else {
      const drift = new Date(row.canceled_at).getTime() - reference.endedAt.getTime();
      if (drift < -2000 || drift > CANCEL_SLACK_MS) say(`canceled at ${row.canceled_at}, the reference says ${reference.endedAt.toISOString()}`);
    }
  }
  if (row.plan?.code !== reference.finalPlanCode) say(`ends on plan ${row.plan?.code}, the reference on ${reference.finalPlanCode} (a plan change answered as done did not take effect, or one took effect unasked)`);
}

/** The operation log as lines, for a failing scenario's report (SIM_VERBOSE=1). */
export function describeLog(subscription: RunSubscription): string {
  const { spec } = subscription;
  const lines = [`      start ${spec.startAt.toISOString()} on ${spec.planCode}, ${spec.paymentMethod}`];
  for (const entry of subscription.log) {
    const { kind, sentAt, ...rest } = entry;
    lines.push(`      ${sentAt.toISOString()} ${kind} ${JSON.stringify(rest)}`);
  }
  return lines.join('\n');
}

/**
 * Where a failing subscription's billing stands, for the report: its status, the live part's attention and last
 * timeline entries, and the workflow's pending activities (a step retrying forever shows here with its failure).
 */
async function describeStanding(system: SimulationSystem, subscription: RunSubscription): Promise<string> {
  const answer = await system.api.call('GET', `/v1/subscriptions/${subscription.subscriptionId}`);
  const live = answer.json?.live;
  const timeline = ((live?.timeline ?? []) as { at: string; event: string }[]).slice(-4).map((entry) => `${entry.at} ${entry.event}`);
  const parts = [`status ${answer.json?.status}`, `live ${live ? (live.status ?? 'answered') : `unavailable (${answer.json?.live_unavailable ?? answer.status})`}`];
  if (live?.attention) parts.push(`attention ${JSON.stringify(live.attention)}`);
  parts.push(`timeline tail [${timeline.join('; ')}]`);
  try {
    const handle = system.env.client.workflow.getHandle(`subscription:${subscription.subscriptionId}`);
    const workflow = await handle.describe();
    const raw = workflow.raw;
    const saved = await saveFailedHistory(handle, `${subscription.spec.customer}-${workflow.runId}`);
    parts.push(`workflow ${workflow.status.name}, ${workflow.historyLength} events (history: ${path.relative(process.cwd(), saved)})`);
    for (const activity of raw.pendingActivities ?? []) {
      parts.push(`pending ${activity.activityType?.name} attempt ${activity.attempt}: ${activity.lastFailure?.message ?? 'no failure yet'}`);
    }
  } catch (error) {
    parts.push(`workflow not described (${error instanceof Error ? error.message : String(error)})`);
  }
  return parts.join(', ');
}
