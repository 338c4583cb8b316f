/**
 * A win-back restart after a cancellation now: the subscription gave no service between its end and the restart,
 * and no invoice covers that stretch (the closing invoice stops at the end, the restarted run's first period starts
 * at the restart). Usage stamped in that gap must be refused at ingestion, as it was before the restart
 * (`timestamp_after_subscription_end`), not accepted and left unbilled for good.
 *
 * The code is the one of a stretch between two subscriptions (`timestamp_between_subscriptions`): the usage end
 * before it and the restart after it are both known, as between an ended subscription and a later one.
 *
 * Before, leaving `canceled` cleared the row's cancellation time and usage end, so the subscription's billed span
 * became [first start, open) again: an event stamped in the gap, sent after the restart, was answered `accepted`,
 * claimed by no usage close, and billed by no invoice (listed as late usage with no period to re-rate).
 * Time-skipping server and a real Postgres; the API judges events at the server's time.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import { answerWinBackOfferUpdate, cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let serverNow = new Date();

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'gap_tokens', name: 'Tokens', event_type: 'gap.request', aggregation: 'sum', property: 'tokens' });
  const key = await createTestApiKey(db, 'admin');
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: key.headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

// The row keeps [old usage end, restart anchor) in its service gaps (migration 0660); ingestion refuses inside it.
test('usage stamped between a cancellation now and the win-back restart is refused, not accepted and never billed', async () => {
  // Timeline (2031): Jan 1 15.00 a month + 0.01 a token; Jan 5 cancel now -> canceled (closing invoice);
  //   Feb 4 win-back offer (P7D); Feb 5 accepted -> restarted, new period [Feb 5, Mar 5);
  //   Feb 6 events sent: one stamped Jan 20 (the gap: refused), one Feb 6 (accepted, billed on the Mar 5 invoice).
  const settings: PlanSettings = { winBackOffer: { sendAfter: 'P30D', expiresAfter: 'P7D' }, usageGracePeriod: 'PT1H' };
  const plan = await insertPlan(db, {
    code: 'winback-gap',
    billing_interval: 'P1M',
    flat_fee: '15.00',
    settings: settings as Record<string, unknown>,
    charges: [{ metricCode: 'gap_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as unknown[],
  });
  const customer = await insertCustomer(db);
  const { input, workflowId } = await insertSubscription(db, customer, plan, new Date('2031-01-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  const send = async (id: string, timestamp: string) => {
    serverNow = await stack.now();
    const answer = await api.call('POST', '/v1/events', { id, customer: customer.external_id, type: 'gap.request', timestamp, properties: { tokens: 100 } });
    return answer.status === 202 || answer.status === 200 ? 'accepted' : (answer.json.errors?.[0]?.code ?? answer.json.code);
  };

  await stack.advanceTo('2031-01-05T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'pausing the project', requestedBy: 'test' }] });
  await stack.advanceTo('2031-01-20T00:00:00Z');
  expect((await handle.query(subscriptionStateQuery)).status).toBe('canceled');
  const refusedWhileCanceled = await send('gap-before-restart', '2031-01-20T00:00:00Z');

  await stack.advanceTo('2031-02-05T00:00:00Z');
  await handle.executeUpdate(answerWinBackOfferUpdate, { args: [{ accept: true, requestedBy: 'test' }] });
  await stack.advanceTo('2031-02-06T00:00:00Z', 3_600_000);
  expect((await handle.query(subscriptionStateQuery)).status).toBe('active');
  const gap = await send('gap-after-restart', '2031-01-20T00:00:00Z');
  const afterRestart = await send('after-restart', '2031-02-06T00:00:00Z');

  await stack.advanceTo('2031-03-06T00:00:00Z', 3_600_000);
  const events: { event_id: string; billed: boolean }[] = await db('usage_events')
    .where({ customer_id: customer.id })
    .orderBy('event_id')
    .select('event_id', db.raw('period_close_id IS NOT NULL AS billed'));
  expect({ refusedWhileCanceled, gap, afterRestart, events }).toEqual({
    refusedWhileCanceled: 'timestamp_after_subscription_end',
    gap: 'timestamp_between_subscriptions',
    afterRestart: 'accepted',
    events: [{ event_id: 'after-restart', billed: true }],
  });
  await handle.terminate('test done');
});
