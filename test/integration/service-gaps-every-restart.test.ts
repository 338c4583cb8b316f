/**
 * Every way a subscription's row could lose the end of a stretch it billed and reopen it, checked against the running
 * stack: a win-back restart after each kind of end (a cancellation at the period's end, dunning's cancellation, two
 * restarts in a row), and a pause. Usage stamped where no invoice bills it (between a billed end and the restart)
 * must be refused at ingestion, never accepted and billed by nothing; usage stamped where a period does bill it must
 * be accepted and billed. (A cancellation now: win-back-gap-usage-refused.test.ts.)
 * Time-skipping server and a real Postgres; each test in its own year; the API judges events at the server's time.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import { insertUsageEvents } from '../../store/usage';
import {
  answerWinBackOfferUpdate,
  cancelSubscriptionUpdate,
  pauseSubscriptionUpdate,
  SUBSCRIPTION_WORKFLOW_TYPE,
  subscriptionStateQuery,
  TASK_QUEUE,
} from '../../workflows/definitions';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { eventually } from '../support/eventually';
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
  await db('billable_metrics').insert({ code: 'restart_tokens', name: 'Tokens', event_type: 'restart.request', aggregation: 'sum', property: 'tokens' });
  const key = await createTestApiKey(db, 'admin');
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: key.headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const WIN_BACK: PlanSettings = { winBackOffer: { sendAfter: 'P30D', expiresAfter: 'P7D' }, usageGracePeriod: 'PT1H' };

async function startSubscription(code: string, start: string, settings: PlanSettings, customerOverrides: Record<string, unknown> = {}) {
  const plan = await insertPlan(db, {
    code,
    billing_interval: 'P1M',
    flat_fee: '15.00',
    settings: settings as Record<string, unknown>,
    charges: [{ metricCode: 'restart_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as unknown[],
  });
  const customer = await insertCustomer(db, customerOverrides);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date(start));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  /** Sends one event at the server's time: 'accepted' or the refusal's code. */
  const send = async (id: string, timestamp: string): Promise<string> => {
    serverNow = await stack.now();
    const answer = await api.call('POST', '/v1/events', { id, customer: customer.external_id, type: 'restart.request', timestamp, properties: { tokens: 100 } });
    return answer.status === 202 || answer.status === 200 ? 'accepted' : (answer.json.errors?.[0]?.code ?? answer.json.code);
  };
  /** Each stored event with whether a usage close claimed it (an invoice billed it). */
  const stored = async () =>
    db('usage_events').where({ customer_id: customer.id }).orderBy('event_id').select('event_id', db.raw('period_close_id IS NOT NULL AS billed')) as Promise<{ event_id: string; billed: boolean }[]>;
  /** The row's service gaps as [from, until), to the second (a restart's instant is the server's, a few ms past). */
  const gaps = async () =>
    (await db.raw('SELECT lower(g) AS "from", upper(g) AS until FROM subscriptions s, unnest(s.service_gaps) g WHERE s.id = ? ORDER BY 1', [row.id])).rows.map(
      (gap: { from: Date; until: Date }) => [gap.from.toISOString().slice(0, 19), gap.until.toISOString().slice(0, 19)],
    ) as [string, string][];
  return { row, customer, handle, send, stored, gaps };
}

/** Moves time a day at a time until the subscription's win-back offer is open (at most `days`), then accepts it. */
async function acceptWinBack(handle: Awaited<ReturnType<typeof startSubscription>>['handle'], subscriptionId: string, days = 1): Promise<void> {
  const open = () => db('customer_offers').where({ subscription_id: subscriptionId, kind: 'win_back' }).whereNull('answer').first('id');
  for (let day = 0; !(await open()) && day < days; day += 1) await stack.advanceTo(new Date((await stack.now()).getTime() + 86_400_000).toISOString());
  await eventually(open, 'the win-back offer is open', { timeoutMs: 10_000 });
  await handle.executeUpdate(answerWinBackOfferUpdate, { args: [{ accept: true, requestedBy: 'test' }] });
}

test('won back after a cancellation at the period end: usage between that end and the restart is refused', async () => {
  // Timeline (2032): Jan 1 monthly; Jan 10 cancel at period end -> ends Feb 1 (closing invoice after the grace hour);
  //   Mar 2 win-back offer (P30D after the end); Mar 4 accepted -> restarted, new period [Mar 4, Apr 4);
  //   Mar 5 events: one stamped Feb 15 (the gap: refused), one Mar 5 (accepted, billed on the Apr 4 invoice); one
  //   stamped Feb 15 stored directly, as ingestion did before: counted by no preview and not listed as late usage.
  const { row, customer, handle, send, stored, gaps } = await startSubscription('restart-after-period-end', '2032-01-01T00:00:00Z', WIN_BACK);
  await stack.advanceTo('2032-01-10T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'period_end', reason: 'leaving', requestedBy: 'test' }] });
  await stack.advanceTo('2032-02-15T00:00:00Z');
  expect((await handle.query(subscriptionStateQuery)).status).toBe('canceled');
  const refusedWhileCanceled = await send('gap-before-restart', '2032-02-15T00:00:00Z');

  await stack.advanceTo('2032-03-04T00:00:00Z');
  await acceptWinBack(handle, row.id);
  await stack.advanceTo('2032-03-05T00:00:00Z', 3_600_000);
  expect((await handle.query(subscriptionStateQuery)).status).toBe('active');
  const gap = await send('gap-after-restart', '2032-02-15T00:00:00Z');
  const afterRestart = await send('after-restart', '2032-03-05T00:00:00Z');
  // An event stored in the gap before ingestion refused there: neither the preview nor the late-usage list counts it.
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'stored-before-the-fix', eventType: 'restart.request', occurredAt: new Date('2032-02-15T00:00:00Z'), properties: { tokens: 100 } }]);
  const preview = (await api.call('GET', `/v1/subscriptions/${row.id}/usage`)).json.usage;

  await stack.advanceTo('2032-04-05T00:00:00Z', 3_600_000);
  const late = (await api.call('GET', `/v1/subscriptions/${row.id}/late-usage`)).json.data;
  // Billed by nothing, it is listed as uncovered usage instead (docs/usage-events.md "Uncovered usage").
  const uncovered = (await api.call('GET', `/v1/customers/${customer.id}/uncovered-usage`)).json.data.map((event: { id: string; reason: string }) => [event.id, event.reason]);
  expect({ refusedWhileCanceled, gap, afterRestart, preview, late, uncovered, events: await stored() }).toEqual({
    refusedWhileCanceled: 'timestamp_after_subscription_end',
    gap: 'timestamp_between_subscriptions',
    afterRestart: 'accepted',
    preview: [expect.objectContaining({ metric_code: 'restart_tokens', quantity: '100', event_count: 1 })],
    late: [],
    uncovered: [['stored-before-the-fix', 'between_subscriptions']],
    events: [
      { event_id: 'after-restart', billed: true },
      { event_id: 'stored-before-the-fix', billed: false },
    ],
  });
  expect(await gaps()).toEqual([['2032-02-01T00:00:00', '2032-03-04T00:00:00']]);
  await handle.terminate('test done');
});

test("won back after dunning's cancellation: usage between the end and the restart is refused", async () => {
  // Timeline (2033), the card declines until the win-back: Jan 1 monthly, declined -> past due; retries Jan 3 and
  //   Jan 5 declined -> dunning cancels (Jan 5); Feb 4 win-back offer; the customer adds a working card; Feb 5
  //   accepted -> restarted, new period [Feb 5, Mar 5); Feb 6 events: Jan 20 (the gap: refused), Feb 6 (billed).
  const settings: PlanSettings = { ...WIN_BACK, dunning: { retryAfter: ['P2D', 'P2D'], finalAction: 'cancel' } };
  const { row, customer, handle, send, stored, gaps } = await startSubscription('restart-after-dunning', '2033-01-01T00:00:00Z', settings, { payment_method: 'pm_sandbox_declined' });
  await stack.advanceTo('2033-01-20T00:00:00Z');
  expect((await handle.query(subscriptionStateQuery)).status).toBe('canceled');
  const refusedWhileCanceled = await send('gap-before-restart', '2033-01-20T00:00:00Z');

  await stack.advanceTo('2033-02-05T00:00:00Z');
  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_ok' });
  await acceptWinBack(handle, row.id, 10);
  await stack.advanceTo(new Date((await stack.now()).getTime() + 86_400_000).toISOString(), 3_600_000);
  const restarted = await handle.query(subscriptionStateQuery);
  expect(restarted.status).toBe('active');
  const gap = await send('gap-after-restart', '2033-01-20T00:00:00Z');
  const afterRestart = await send('after-restart', (await stack.now()).toISOString());

  await stack.advanceTo(restarted.currentPeriod!.end, 3_600_000);
  await stack.advanceTo(new Date(Date.parse(restarted.currentPeriod!.end) + 86_400_000).toISOString(), 3_600_000);
  // One gap, ending where the restarted period starts.
  expect({ refusedWhileCanceled, gap, afterRestart, events: await stored() }).toEqual({
    refusedWhileCanceled: 'timestamp_after_subscription_end',
    gap: 'timestamp_between_subscriptions',
    afterRestart: 'accepted',
    events: [{ event_id: 'after-restart', billed: true }],
  });
  expect((await gaps()).map(([, until]) => until)).toEqual([restarted.currentPeriod!.start.slice(0, 19)]);
  await handle.terminate('test done');
});

test('won back twice: each gap is kept and refused, the service between them is not (late usage there stays pending)', async () => {
  // Timeline (2034): Jan 1 monthly; Jan 5 cancel now; Feb 4 offer, Feb 5 accepted -> restarted [Feb 5, Mar 5);
  //   Feb 10 cancel now; Mar 12 offer, Mar 13 accepted -> restarted [Mar 13, Apr 13);
  //   Mar 14 events: Jan 20 (first gap), Feb 20 (second gap) refused; Feb 7 (the service between them, closed by the
  //   second cancellation's invoice) accepted as late usage, listed for a re-rating; Mar 14 accepted and billed.
  const { row, handle, send, stored, gaps } = await startSubscription('restart-twice', '2034-01-01T00:00:00Z', WIN_BACK);
  await stack.advanceTo('2034-01-05T00:00:00Z');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'first leave', requestedBy: 'test' }] });
  await stack.advanceTo('2034-02-05T00:00:00Z');
  await acceptWinBack(handle, row.id);
  await stack.advanceTo('2034-02-10T00:00:00Z', 3_600_000);
  expect((await handle.query(subscriptionStateQuery)).status).toBe('active');
  await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'second leave', requestedBy: 'test' }] });
  await stack.advanceTo('2034-03-13T00:00:00Z');
  await acceptWinBack(handle, row.id);
  await stack.advanceTo('2034-03-14T00:00:00Z', 3_600_000);
  expect((await handle.query(subscriptionStateQuery)).status).toBe('active');
  const firstGap = await send('first-gap', '2034-01-20T00:00:00Z');
  const secondGap = await send('second-gap', '2034-02-20T00:00:00Z');
  const betweenGaps = await send('between-gaps', '2034-02-07T00:00:00Z');
  const afterRestart = await send('after-restart', '2034-03-14T00:00:00Z');

  await stack.advanceTo('2034-04-14T00:00:00Z', 3_600_000);
  const late = (await api.call('GET', `/v1/subscriptions/${row.id}/late-usage`)).json.data.map((event: { id: string }) => event.id);
  expect({ firstGap, secondGap, betweenGaps, afterRestart, late, events: await stored() }).toEqual({
    firstGap: 'timestamp_between_subscriptions',
    secondGap: 'timestamp_between_subscriptions',
    betweenGaps: 'accepted',
    afterRestart: 'accepted',
    late: ['between-gaps'],
    events: [
      { event_id: 'after-restart', billed: true },
      { event_id: 'between-gaps', billed: false },
    ],
  });
  expect(await gaps()).toEqual([
    ['2034-01-05T00:00:00', '2034-02-05T00:00:00'],
    ['2034-02-10T00:00:00', '2034-03-13T00:00:00'],
  ]);
  await handle.terminate('test done');
});

test('a pause that bills usage reopens nothing: usage stamped while paused is accepted and billed by the moved period', async () => {
  // Timeline (2035), a plan that bills usage while paused: Jan 1 monthly [Jan 1, Feb 1); Jan 10 paused until Jan 20;
  //   resumed, the period ends Feb 11 (ten days given back). Events stamped Jan 15, one sent then and one after the
  //   resume, and one stamped Jan 21: all accepted and billed on the Feb 11 invoice. No gap is recorded. (Under the
  //   reject policy usage stamped in a pause is refused: usage-blocked-judged-by-event-time.test.ts.)
  const { handle, send, stored, gaps } = await startSubscription('restart-pause', '2035-01-01T00:00:00Z', { usageGracePeriod: 'PT1H', usageWhilePaused: 'bill' });
  await stack.advanceTo('2035-01-10T00:00:00Z');
  await handle.executeUpdate(pauseSubscriptionUpdate, { args: [{ until: '2035-01-20T00:00:00Z', requestedBy: 'test' }] });
  await stack.advanceTo('2035-01-15T00:00:00Z');
  const whilePaused = await send('while-paused', '2035-01-15T00:00:00Z');
  await stack.advanceTo('2035-01-21T00:00:00Z', 3_600_000);
  expect((await handle.query(subscriptionStateQuery)).status).toBe('active');
  const pausedSentLater = await send('paused-sent-later', '2035-01-15T00:00:00Z');
  const afterResume = await send('after-resume', '2035-01-21T00:00:00Z');

  await stack.advanceTo('2035-02-12T00:00:00Z', 3_600_000);
  expect({ whilePaused, pausedSentLater, afterResume, events: await stored() }).toEqual({
    whilePaused: 'accepted',
    pausedSentLater: 'accepted',
    afterResume: 'accepted',
    events: [
      { event_id: 'after-resume', billed: true },
      { event_id: 'paused-sent-later', billed: true },
      { event_id: 'while-paused', billed: true },
    ],
  });
  expect(await gaps()).toEqual([]);
  await handle.terminate('test done');
});
