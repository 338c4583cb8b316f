/**
 * An immediate plan change whose answer was lost: Temporal applied the update (proration invoice and all), but the
 * API's call ran out of time and answered 503 temporal_unavailable, giving the Idempotency-Key back. The client's
 * retry with the same key is the same update (its id derives from the key and the request): Temporal answers it
 * with the first outcome. The route must let it ask, not refuse it first from Postgres with 409 same_plan (stored
 * for good under the key), which loses the answer the client paid for: the proration invoice.
 *
 *   day 0 basic 10.00 ── day 15 upgrade to pro: applied, answer lost (503) ── retry, same key ──> 200, the same invoice
 */
import { Client } from '@temporalio/client';
import { createApp } from '../../api/app';
import { TemporalDeadlinePassed } from '../../api/temporal-deadline';
import type { Database } from '../../store/database';
import { SUBSCRIPTION_WORKFLOW_TYPE, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

let stack: TimeSkippingStack;
let db: Database;
let api: TestHttp;
let loseNextAnswer = false;
/** Drops the next update's answer at once, as a deadline that passes before the workflow took it; the update goes on. */
let answerNextTooLate = false;
let updateStillGoing: Promise<unknown> | undefined;

/** A client whose updates reach the workflow; `loseNextAnswer` drops the next one's answer as a deadline would. */
function clientLosingAnswers(real: Client): Client {
  const temporal = new Client({ connection: real.connection });
  const getHandle = temporal.workflow.getHandle.bind(temporal.workflow);
  temporal.workflow.getHandle = ((workflowId: string) => {
    const handle = getHandle(workflowId);
    const executeUpdate = handle.executeUpdate.bind(handle);
    return Object.assign(handle, {
      executeUpdate: async (...args: Parameters<typeof executeUpdate>) => {
        if (answerNextTooLate) {
          answerNextTooLate = false;
          updateStillGoing = executeUpdate(...args);
          throw new TemporalDeadlinePassed(5_000, new Error('Call cancelled'));
        }
        const result = await executeUpdate(...args);
        if (!loseNextAnswer) return result;
        loseNextAnswer = false;
        throw new TemporalDeadlinePassed(5_000, new Error('Call cancelled'));
      },
    });
  }) as typeof temporal.workflow.getHandle;
  return temporal;
}

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  db = stack.db;
  const key = await createTestApiKey(db, 'app');
  api = await serve(createApp({ db, temporal: clientLosingAnswers(stack.env.client), log: () => undefined }), { headers: key.headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

test('the retry of a plan change whose answer was lost gets the first answer, and nothing is applied twice', async () => {
  const basic = await insertPlan(db, { code: 'retry-basic', billing_interval: 'P1M', flat_fee: '10.00' });
  await insertPlan(db, { code: 'retry-pro', billing_interval: 'P1M', flat_fee: '20.00' });
  const customer = await insertCustomer(db);
  const start = new Date(Math.ceil((await stack.env.currentTimeMs()) / 1000) * 1000 + 60_000);
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, start);
  const handle = await stack.env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo(new Date(start.getTime() + 15 * 86_400_000).toISOString());

  const path = `/v1/subscriptions/${row.id}/plan-change`;
  const body = { plan_code: 'retry-pro', effective: 'immediate' };
  loseNextAnswer = true;
  const lost = await api.call('POST', path, body, { 'idempotency-key': 'upgrade-lost-answer' });
  expect([lost.status, lost.json.code]).toEqual([503, 'temporal_unavailable']);
  const prorations = async () => (await db('invoices').where({ subscription_id: row.id, kind: 'proration' })).map((invoice) => invoice.id as string);
  const [invoiceId] = await prorations();
  expect(invoiceId).toBeDefined(); // the change took effect

  const retried = await api.call('POST', path, body, { 'idempotency-key': 'upgrade-lost-answer' });
  expect([retried.status, retried.json.code]).toEqual([200, undefined]);
  expect(retried.json).toMatchObject({ effective: 'immediate', plan_code: 'retry-pro', invoice: { id: invoiceId } });
  expect(await prorations()).toEqual([invoiceId]);

  // A new request for the plan it is now on is still refused.
  const again = await api.call('POST', path, body, { 'idempotency-key': 'upgrade-again' });
  expect([again.status, again.json.code]).toEqual([409, 'same_plan']);
  await handle.terminate('test done');
});

/**
 * In a trial a change "at period end" switches the plan now (the plan the first period bills). Its answer lost before
 * the workflow took it, the route records the change on the row (the workflow may take it: the overlap check must
 * count it); the workflow's switch then clears that record, so the row shows the plan in force and no change to come.
 *
 *   day 0 basic (trial P14D) ── day 3 "pro at period end": 503, then taken (immediate) ── retry, same key ──> 200
 */
test('a trial plan change at period end whose answer was lost leaves the row on the new plan with nothing scheduled', async () => {
  const basic = await insertPlan(db, { code: 'trial-basic', billing_interval: 'P1M', flat_fee: '10.00', trial_period: 'P14D' });
  const pro = await insertPlan(db, { code: 'trial-pro', billing_interval: 'P1M', flat_fee: '20.00' });
  const customer = await insertCustomer(db);
  const start = new Date(Math.ceil((await stack.env.currentTimeMs()) / 1000) * 1000 + 60_000);
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, start);
  const handle = await stack.env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo(new Date(start.getTime() + 3 * 86_400_000).toISOString());

  const path = `/v1/subscriptions/${row.id}/plan-change`;
  const body = { plan_code: 'trial-pro', effective: 'period_end' };
  const shown = async () => {
    const [stored, got] = [(await db('subscriptions').where({ id: row.id }).first())!, await api.call('GET', `/v1/subscriptions/${row.id}`)];
    return [stored.plan_id === pro.id ? 'pro' : 'basic', stored.scheduled_change_plan_id, got.json.plan.code, got.json.status, got.json.live?.scheduledChange];
  };
  answerNextTooLate = true;
  const lost = await api.call('POST', path, body, { 'idempotency-key': 'trial-change-lost' });
  expect([lost.status, lost.json.code]).toEqual([503, 'temporal_unavailable']);
  const taken = (await updateStillGoing) as { effective: string; effectiveAt: string };
  expect(taken.effective).toBe('immediate');
  expect(await shown()).toEqual(['pro', null, 'trial-pro', 'trialing', null]);

  const retried = await api.call('POST', path, body, { 'idempotency-key': 'trial-change-lost' });
  expect([retried.status, retried.json.effective, retried.json.effective_at, retried.json.invoice]).toEqual([200, 'immediate', taken.effectiveAt, null]);
  expect(await shown()).toEqual(['pro', null, 'trial-pro', 'trialing', null]);
  expect(await db('outbox').where({ aggregate_id: row.id, event_type: 'subscription.plan_changed' }).count<{ count: string }[]>('* as count')).toEqual([{ count: '1' }]);
  await handle.terminate('test done');
});

/**
 * A change at period end whose answer was lost is recorded on the row over the change scheduled before it (the
 * workflow may have taken it). Refused, the retry with the same key puts back what the workflow holds; taken, the row
 * keeps it. A refusal that was answered is replayed from its key and moves nothing. The usage page's projected fee
 * of the next invoice follows the row: pro's 20.00 (before, the refused max's 30.00 until the boundary billed 20.00).
 *
 *   day 0 basic ── day 5 "pro at period end": 200 ── pause ── "max at period end": 503, refused (paused)
 *     ── retry: 409, row back on pro ── retry: 409 replayed ── resume ── "max at period end": 503, taken ── retry: 200
 */
test('a change at period end whose answer was lost and that was refused leaves the earlier scheduled change on the row', async () => {
  const basic = await insertPlan(db, { code: 'keep-basic', billing_interval: 'P1M', flat_fee: '10.00' });
  const pro = await insertPlan(db, { code: 'keep-pro', billing_interval: 'P1M', flat_fee: '20.00' });
  const max = await insertPlan(db, { code: 'keep-max', billing_interval: 'P1M', flat_fee: '30.00' });
  const customer = await insertCustomer(db);
  const start = new Date(Math.ceil((await stack.env.currentTimeMs()) / 1000) * 1000 + 60_000);
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, start);
  const handle = await stack.env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  await stack.advanceTo(new Date(start.getTime() + 5 * 86_400_000).toISOString());

  const path = `/v1/subscriptions/${row.id}/plan-change`;
  const names = new Map([[pro.id, 'pro'], [max.id, 'max']]);
  const shown = async () => {
    const [stored, got] = [(await db('subscriptions').where({ id: row.id }).first())!, await api.call('GET', `/v1/subscriptions/${row.id}`)];
    // The fee the next period's invoice bills in advance, as the usage page projects it from the row.
    const usage = await api.call('GET', `/v1/subscriptions/${row.id}/usage`);
    return [names.get(stored.scheduled_change_plan_id) ?? null, got.json.live?.scheduledChange?.plan.planCode ?? null, usage.json.projected?.fee];
  };
  const toPro = await api.call('POST', path, { plan_code: 'keep-pro', effective: 'period_end' }, { 'idempotency-key': 'keep-to-pro' });
  expect(toPro.status).toBe(200);
  expect((await api.call('POST', `/v1/subscriptions/${row.id}/pause`, {}, { 'idempotency-key': 'keep-pause' })).status).toBe(200);

  const toMax = { plan_code: 'keep-max', effective: 'period_end' };
  answerNextTooLate = true;
  const lost = await api.call('POST', path, toMax, { 'idempotency-key': 'keep-to-max' });
  expect([lost.status, lost.json.code]).toEqual([503, 'temporal_unavailable']);
  await expect(updateStillGoing).rejects.toThrow();
  const retried = await api.call('POST', path, toMax, { 'idempotency-key': 'keep-to-max' });
  expect([retried.status, retried.json.code]).toEqual([409, 'subscription_paused']);
  expect(await shown()).toEqual(['pro', 'keep-pro', '20.00']);
  const replayed = await api.call('POST', path, toMax, { 'idempotency-key': 'keep-to-max' });
  expect([replayed.status, replayed.json.code, replayed.headers.get('idempotent-replayed')]).toEqual([409, 'subscription_paused', 'true']);
  expect(await shown()).toEqual(['pro', 'keep-pro', '20.00']);

  // Lost and taken: the row shows the new change, and the retry gets the first answer.
  expect((await api.call('POST', `/v1/subscriptions/${row.id}/resume`, {}, { 'idempotency-key': 'keep-resume' })).status).toBe(200);
  answerNextTooLate = true;
  const lostTaken = await api.call('POST', path, toMax, { 'idempotency-key': 'keep-to-max-again' });
  expect([lostTaken.status, lostTaken.json.code]).toEqual([503, 'temporal_unavailable']);
  const taken = (await updateStillGoing) as { effective: string; effectiveAt: string };
  expect(await shown()).toEqual(['max', 'keep-max', '30.00']);
  const retriedTaken = await api.call('POST', path, toMax, { 'idempotency-key': 'keep-to-max-again' });
  expect([retriedTaken.status, retriedTaken.json.effective, retriedTaken.json.effective_at, retriedTaken.json.plan_code]).toEqual([200, 'period_end', taken.effectiveAt, 'keep-max']);
  expect(await shown()).toEqual(['max', 'keep-max', '30.00']);
  await handle.terminate('test done');
});
