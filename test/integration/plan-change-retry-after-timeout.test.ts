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

/** A client whose updates reach the workflow; `loseNextAnswer` drops the next one's answer as a deadline would. */
function clientLosingAnswers(real: Client): Client {
  const temporal = new Client({ connection: real.connection });
  const getHandle = temporal.workflow.getHandle.bind(temporal.workflow);
  temporal.workflow.getHandle = ((workflowId: string) => {
    const handle = getHandle(workflowId);
    const executeUpdate = handle.executeUpdate.bind(handle);
    return Object.assign(handle, {
      executeUpdate: async (...args: Parameters<typeof executeUpdate>) => {
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
