/**
 * Runs lifecycle-simulation scenarios against the real system: the HTTP API (in process, its clock set to the
 * server's), the billing worker (stopped and replaced on a worker-restart operation) and a time-skipping Temporal
 * server, over one Postgres database. Many scenarios run side by side on one timeline: their operations are
 * merged by instant, time is moved to each instant, and the requests due then are sent (one subscription's in
 * order, different subscriptions' concurrently). Each answer is written to the subscription's operation log,
 * which the reference model (reference-model.ts) reads; scenario-invariants.ts then compares.
 */
import { randomUUID } from 'node:crypto';
import { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker, WorkflowBundle } from '@temporalio/worker';
import { createApp } from '../../api/app';
import type { Database } from '../../store/database';
import { createBillingWorker } from '../../worker/create-worker';
import { createTestApiKey } from './api-keys';
import { eventually } from './eventually';
import { Json, serve, TestHttp } from './http';
import type { ObservedOperation } from './reference-model';
import { SIM_CURRENCY, SIM_EVENT_TYPE, SIM_METRICS, SIM_PLANS, planBody } from './scenario-catalog';
import type { PlannedOperation, Scenario, ScenarioSubscription } from './scenario-generator';

export interface SimulationSystem {
  readonly env: TestWorkflowEnvironment;
  readonly db: Database;
  readonly api: TestHttp;
  /** The workflow code the worker runs (./scenario-replay.ts replays the runs against it). */
  readonly workflowBundle: WorkflowBundle;
  /**
   * Stops the running worker (letting it finish what it can) and starts a fresh one on the same task queue.
   * `workflowIds`: the workflows whose sticky queue (the stopped worker's cache) is released afterwards.
   */
  restartWorker(workflowIds: readonly string[]): Promise<void>;
  /** Moves server time to `instant` (never back) and the API's clock with it. */
  advanceTo(instant: Date): Promise<void>;
  now(): Date;
  readonly restarts: number;
  stop(): Promise<void>;
}

/** Starts the API and a worker on an existing time-skipping server and database, and publishes the catalog. */
export async function startSimulationSystem(env: TestWorkflowEnvironment, db: Database, bundle: WorkflowBundle): Promise<SimulationSystem> {
  let clock = new Date(await env.currentTimeMs());
  const client = new Client({ connection: env.connection }); // the environment's own client would unlock time skipping
  const api = await serve(createApp({ db, temporal: client, now: () => clock, log: () => undefined }), { headers: (await createTestApiKey(db, 'admin')).headers });
  const startWorker = async (): Promise<{ worker: Worker; running: Promise<void> }> => {
    const worker = await createBillingWorker({ connection: env.nativeConnection, db, workflowBundle: bundle });
    return { worker, running: worker.run() };
  };
  let current = await startWorker();
  let restarts = 0;
  for (const metric of SIM_METRICS) await expectOk(api.call('POST', '/v1/metrics', metric), `create metric ${metric.code}`);
  for (const plan of SIM_PLANS) await expectOk(api.call('POST', '/v1/plans', planBody(plan)), `create plan ${plan.code}`);
  return {
    env,
    db,
    api,
    workflowBundle: bundle,
    get restarts() {
      return restarts;
    },
    async restartWorker(workflowIds) {
      current.worker.shutdown();
      await current.running;
      // A real server hands a stopped worker's sticky tasks back to the shared queue after a timeout; the
      // time-skipping server has no such timeout, so each cached workflow's sticky queue is reset (our launcher of
      // the test server answers ResetStickyTaskQueue: scripts/temporal/StickyQueueReset.java).
      for (const workflowId of workflowIds) {
        await client.workflowService.resetStickyTaskQueue({ namespace: 'default', execution: { workflowId } }).catch((error: Error) => {
          throw new Error(`cannot restart the worker: ResetStickyTaskQueue failed for ${workflowId} (${error.message}); the stock test server does not answer it, re-provision with npm run provision`);
        });
      }
      current = await startWorker();
      restarts += 1;
    },
    async advanceTo(instant) {
      const target = instant.getTime();
      for (;;) {
        const now = await env.currentTimeMs();
        if (now >= target) break;
        if (process.env.SIM_VERBOSE === '2') process.stderr.write(`  server time ${new Date(now).toISOString()}\n`);
        await env.sleep(target - now);
      }
      clock = new Date(Math.max(clock.getTime(), target));
    },
    now: () => clock,
    async stop() {
      await api.close();
      current.worker.shutdown();
      await current.running;
    },
  };
}

async function expectOk(response: Promise<{ status: number; json: Json; text: string }>, what: string): Promise<Json> {
  const answer = await response;
  if (answer.status >= 300) throw new Error(`${what}: HTTP ${answer.status} ${answer.text}`);
  return answer.json;
}

/** One subscription as it ran: its ids and everything that was asked of it, with the answers. */
export interface RunSubscription {
  readonly spec: ScenarioSubscription;
  customerId: string;
  subscriptionId: string;
  readonly log: ObservedOperation[];
  /** Requests whose answer the harness could not classify (a 5xx, a malformed answer): each is a finding. */
  readonly anomalies: string[];
}

export interface ScenarioRun {
  readonly scenario: Scenario;
  readonly subscriptions: RunSubscription[];
}

/**
 * Runs scenarios side by side to their check instant and returns their logs. Scenario operations must not be
 * earlier than the system's clock (the runner only moves time forward).
 */
export async function runScenarios(system: SimulationSystem, scenarios: readonly Scenario[], progress: (line: string) => void = () => undefined): Promise<ScenarioRun[]> {
  const runs: ScenarioRun[] = [];
  const queue: { at: number; op: PlannedOperation; run: ScenarioRun }[] = [];
  for (const scenario of scenarios) {
    const run: ScenarioRun = { scenario, subscriptions: [] };
    for (const spec of scenario.subscriptions) {
      const customer = await expectOk(
        system.api.call('POST', '/v1/customers', { external_id: spec.customer, name: `Simulated ${spec.customer}`, currency: SIM_CURRENCY, payment_method: spec.paymentMethod }),
        `create customer ${spec.customer}`,
      );
      run.subscriptions.push({ spec, customerId: customer.id, subscriptionId: '', log: [], anomalies: [] });
    }
    runs.push(run);
    for (const op of scenario.operations) queue.push({ at: op.at.getTime(), op, run });
  }
  queue.sort((a, b) => a.at - b.at);

  let done = 0;
  for (let i = 0; i < queue.length; ) {
    const at = queue[i].at;
    const due: typeof queue = [];
    while (i < queue.length && queue[i].at === at) due.push(queue[i++]);
    if (process.env.SIM_VERBOSE === '2') progress(`advancing to ${new Date(at).toISOString()}`);
    await system.advanceTo(new Date(at));
    if (due.some(({ op }) => op.kind === 'restart_worker')) {
      await system.restartWorker(runs.flatMap((run) => run.subscriptions.filter((s) => s.subscriptionId).map((s) => `subscription:${s.subscriptionId}`)));
      progress(`worker restarted at ${new Date(at).toISOString()}`);
    }
    // One subscription's requests in order; different subscriptions' at once.
    const bySubscription = new Map<RunSubscription, PlannedOperation[]>();
    for (const { op, run } of due) {
      if (op.kind === 'restart_worker') continue;
      const subscription = run.subscriptions[op.subscription];
      bySubscription.set(subscription, [...(bySubscription.get(subscription) ?? []), op]);
    }
    await Promise.all(
      [...bySubscription].map(async ([subscription, ops]) => {
        for (const op of ops) {
          if (process.env.SIM_VERBOSE === '2') progress(`${new Date(at).toISOString()} ${subscription.spec.customer} ${op.kind} ${op.note}`);
          await perform(system, subscription, op);
        }
      }),
    );
    done += due.length;
    if (done % 500 < due.length) progress(`${done}/${queue.length} operations, server time ${new Date(at).toISOString()}`);
  }
  await system.advanceTo(new Date(Math.max(...scenarios.map((scenario) => scenario.checkAt.getTime()))));
  for (const run of runs) for (const subscription of run.subscriptions) await resolveResumes(system.api, subscription);
  return runs;
}

/**
 * A resume is answered at once but applied when the run's main loop gets to it (after a grace window or a charge
 * in progress), so its instant is read from the timeline once the scenario is over: each accepted resume gets the
 * first `resumed` entry after it. One that never shows was answered done and did not take effect.
 */
async function resolveResumes(api: TestHttp, subscription: RunSubscription): Promise<void> {
  const pending = subscription.log.flatMap((entry, index) => (entry.kind === 'resume' && entry.outcome === 'accepted' && !entry.at ? [index] : []));
  if (pending.length === 0) return;
  const answer = await api.call('GET', `/v1/subscriptions/${subscription.subscriptionId}`);
  const resumed = ((answer.json?.live?.timeline ?? []) as { at: string; event: string }[]).filter((entry) => entry.event === 'resumed').map((entry) => new Date(entry.at));
  let next = 0;
  for (const index of pending) {
    const entry = subscription.log[index];
    while (next < resumed.length && resumed[next].getTime() < entry.sentAt.getTime()) next += 1;
    if (next < resumed.length) subscription.log[index] = { ...entry, at: resumed[next++] } as ObservedOperation;
    else subscription.anomalies.push(`${entry.sentAt.toISOString()} resume answered done, but the subscription never resumed (no "resumed" on its timeline)`);
  }
}

const isoOrUndefined = (value: unknown): Date | undefined => (typeof value === 'string' ? new Date(value) : undefined);

async function perform(system: SimulationSystem, subscription: RunSubscription, op: PlannedOperation): Promise<void> {
  const sentAt = system.now();
  const { api } = system;
  const id = subscription.subscriptionId;
  const unexpected = (what: string, answer: { status: number; text: string }): void => {
    subscription.anomalies.push(`${sentAt.toISOString()} ${what}: HTTP ${answer.status} ${answer.text.slice(0, 300)}`);
  };
  const answerOf = (status: number): 'accepted' | 'rejected' | null => (status < 300 ? 'accepted' : status < 500 ? 'rejected' : null);

  // Lifecycle requests go as a careful client sends them: with an Idempotency-Key, repeated on 503 (on a loaded
  // machine the workflow may answer after the API's deadline: the change may or may not have been applied, and only
  // the repeat says which). Scored on the first answer, a 503 was an anomaly the reference could not model.
  const post = (path: string, body: unknown) => postUntilDecided(api, path, body);

  switch (op.kind) {
    case 'create': {
      const answer = await post('/v1/subscriptions', { customer_id: subscription.customerId, plan_code: subscription.spec.planCode, start_at: subscription.spec.startAt.toISOString() });
      if (answer.status !== 201) throw new Error(`creating the subscription of ${subscription.spec.customer} failed: HTTP ${answer.status} ${answer.text}`);
      subscription.subscriptionId = answer.json.id;
      return;
    }
    case 'event': {
      const body = { id: op.event.id, customer: subscription.spec.customer, type: SIM_EVENT_TYPE, timestamp: op.event.timestamp, properties: { tokens: op.event.tokens } };
      const answer = await api.call('POST', '/v1/events', body);
      if (answer.status === 200 && (answer.json.accepted === 1 || answer.json.duplicates === 1)) {
        subscription.log.push({ kind: 'event', sentAt, event: op.event, outcome: answer.json.accepted === 1 ? 'accepted' : 'duplicate' });
      } else if (answer.status === 400 || answer.status === 422) {
        subscription.log.push({ kind: 'event', sentAt, event: op.event, outcome: 'rejected', code: answer.json?.errors?.[0]?.code ?? answer.json?.code });
      } else {
        unexpected(`event ${op.event.id}`, answer);
      }
      return;
    }
    case 'plan_change': {
      const answer = await post(`/v1/subscriptions/${id}/plan-change`, { plan_code: op.planCode, effective: op.effective });
      const outcome = answerOf(answer.status);
      if (!outcome) return unexpected(`plan change to ${op.planCode}`, answer);
      subscription.log.push({ kind: 'plan_change', sentAt, code: answer.json?.code, planCode: op.planCode, effective: op.effective, outcome, effectiveAt: outcome === 'accepted' ? isoOrUndefined(answer.json.effective_at) : undefined });
      return;
    }
    case 'cancel': {
      const answer = await post(`/v1/subscriptions/${id}/cancel`, { at: op.when, reason: op.note });
      const outcome = answerOf(answer.status);
      if (!outcome) return unexpected(`cancel ${op.when}`, answer);
      subscription.log.push({ kind: 'cancel', sentAt, code: answer.json?.code, when: op.when, outcome, effectiveAt: outcome === 'accepted' ? isoOrUndefined(answer.json.effective_at) : undefined, final: op.final });
      return;
    }
    case 'pause': {
      const answer = await post(`/v1/subscriptions/${id}/pause`, {});
      const outcome = answerOf(answer.status);
      if (!outcome) return unexpected('pause', answer);
      // The instant the run paused is its own (workflow time): read from its timeline, as ops would.
      const at = outcome === 'accepted' ? await timelineInstant(api, id, 'status:paused', sentAt).catch((error: Error) => (subscription.anomalies.push(`pause answered done: ${error.message}`), undefined)) : undefined;
      subscription.log.push({ kind: 'pause', sentAt, code: answer.json?.code, outcome, at });
      return;
    }
    case 'resume': {
      const answer = await post(`/v1/subscriptions/${id}/resume`, {});
      const outcome = answerOf(answer.status);
      if (!outcome) return unexpected('resume', answer);
      subscription.log.push({ kind: 'resume', sentAt, code: answer.json?.code, outcome }); // its instant: resolveResumes, at the end

      return;
    }
    case 'restart_worker':
      return;
  }
}

/**
 * A POST under one Idempotency-Key, repeated while the answer decides nothing: 503 (the workflow did not answer in
 * time) or 409 idempotency_request_in_progress (the first attempt still runs). The last answer after a few tries.
 */
async function postUntilDecided(api: TestHttp, path: string, body: unknown): Promise<Awaited<ReturnType<TestHttp['call']>>> {
  const headers = { 'idempotency-key': randomUUID() };
  for (let attempt = 1; ; attempt += 1) {
    const answer = await api.call('POST', path, body, headers);
    const undecided = answer.status === 503 || (answer.status === 409 && answer.json?.code === 'idempotency_request_in_progress');
    if (!undecided || attempt === 5) return answer;
    await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
  }
}

/** The instant of the first timeline entry `event` at or after `since`, waiting briefly for the run to get there. */
async function timelineInstant(api: TestHttp, subscriptionId: string, event: string, since: Date): Promise<Date> {
  return eventually(
    async () => {
      const answer = await api.call('GET', `/v1/subscriptions/${subscriptionId}`);
      const entries: { at: string; event: string }[] = answer.json?.live?.timeline ?? [];
      const entry = entries.find((candidate) => candidate.event === event && new Date(candidate.at).getTime() >= since.getTime() - 1000);
      return entry ? new Date(entry.at) : undefined;
    },
    `timeline entry ${event} of subscription ${subscriptionId}`,
    { timeoutMs: 20_000, intervalMs: 50 },
  );
}
