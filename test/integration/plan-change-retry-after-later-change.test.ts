/**
 * A plan change request retried with its Idempotency-Key (so the same update id) after a later change made the
 * subscription leave the plan it asked for, in a later workflow run. Temporal answers an update id with its first
 * outcome only within one run; a continue-as-new (every second period) forgets it, so the retry reached the handler
 * again. Its change is recorded (plan_changes keyed by the request) and the stored instant, long past, came back:
 * the stretch to close was inverted (nothing closed), the proration invoice found was the first one, and the plan
 * was switched anyway, with no proration, the usage stretch moved back to the old instant: the next period invoice
 * found the usage closure of that instant (another stretch's, billed already) and billed 0.00 for March's usage.
 * Time-skipping server, the API and a real Postgres.
 *
 *   2032 Jan 1 basic (10.00) -- Jan 5 r1: -> pro (20.00), its answer lost (503: the key is given back)
 *   Jan 10 r2: -> team (30.00) -- Feb 1, Mar 1: periods (a new run) -- Mar 16: 7 calls on team -- Mar 20 r1 again
 *   The retry gets r1's first outcome and changes nothing; Apr 1: team's fee, March's 7 calls at team (2.10).
 */
import { Client } from '@temporalio/client';
import { createApp } from '../../api/app';
import { TemporalDeadlinePassed } from '../../api/temporal-deadline';
import type { PlanRow } from '../../store/catalog';
import type { Database } from '../../store/database';
import type { InvoiceLineRow, InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import { SUBSCRIPTION_WORKFLOW_TYPE, subscriptionStateQuery, TASK_QUEUE } from '../../workflows/definitions';
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
  await db('billable_metrics').insert({ code: 'rl_calls', name: 'Calls', event_type: 'rl.call', aggregation: 'count' });
  const key = await createTestApiKey(db, 'app');
  api = await serve(createApp({ db, temporal: clientLosingAnswers(stack.env.client), log: () => undefined }), { headers: key.headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const plan = (code: string, flatFee: string, unitPrice: string): Promise<PlanRow> =>
  insertPlan(db, { code, billing_interval: 'P1M', flat_fee: flatFee, charges: [{ metricCode: 'rl_calls', price: { model: 'per_unit', unitPrice } }] as never, settings: { usageGracePeriod: 'PT1H' } as never });

test('a plan change retried in a later run, after a later change, gets its first outcome and changes nothing', async () => {
  const basic = await plan('rl-basic', '10.00', '0.10');
  await plan('rl-pro', '20.00', '0.20');
  await plan('rl-team', '30.00', '0.30');
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, basic, new Date('2032-01-01T00:00:00Z'));
  const first = await stack.env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });
  const path = `/v1/subscriptions/${row.id}/plan-change`;
  const toPro = { plan_code: 'rl-pro', effective: 'immediate' };

  await stack.advanceTo('2032-01-05T00:00:00Z');
  loseNextAnswer = true;
  expect((await api.call('POST', path, toPro, { 'idempotency-key': 'r1' })).status).toBe(503);
  const [firstProration] = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'proration' });
  await stack.advanceTo('2032-01-10T00:00:00Z');
  expect((await api.call('POST', path, { plan_code: 'rl-team', effective: 'immediate' }, { 'idempotency-key': 'r2' })).status).toBe(200);
  await stack.advanceTo('2032-03-16T00:00:00Z');
  expect((await stack.env.client.workflow.getHandle(workflowId).describe()).runId).not.toBe(first.firstExecutionRunId);
  await insertUsageEvents(
    db,
    Array.from({ length: 7 }, (_, i) => ({ customerId: customer.id, eventId: `rl-${i}`, eventType: 'rl.call', occurredAt: new Date(`2032-03-16T0${i}:00:00Z`), properties: {} })),
  );
  await stack.advanceTo('2032-03-20T00:00:00Z');
  const retried = await api.call('POST', path, toPro, { 'idempotency-key': 'r1' });
  // r1's answer: pro from Jan 5, its proration invoice (-10.00 + 20.00 for 27 of 31 days = 8.71).
  expect(retried.status).toBe(200);
  expect(retried.json).toMatchObject({ effective: 'immediate', plan_code: 'rl-pro', invoice: { id: firstProration.id, total: '8.71' } });
  expect(retried.json.effective_at).toMatch(/^2032-01-05T00:00:00/);
  await stack.advanceTo('2032-04-01T02:00:00Z', 600_000);

  const april = await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'period' }).andWhere('period_start', '2032-04-01T00:00:00Z').first();
  const aprilLines = await db<InvoiceLineRow>('invoice_lines').where({ invoice_id: april!.id }).orderBy('position');
  expect(aprilLines.map((line) => [line.kind, Number(line.amount).toFixed(2)])).toEqual([
    ['flat_fee', '30.00'],
    ['usage', '2.10'],
  ]);
  expect(await db<InvoiceRow>('invoices').where({ subscription_id: row.id, kind: 'proration' }).count<{ count: string }[]>('id as count')).toEqual([{ count: '2' }]);
  expect(await stack.env.client.workflow.getHandle(workflowId).query(subscriptionStateQuery)).toMatchObject({ planCode: 'rl-team' });
  await stack.env.client.workflow.getHandle(workflowId).terminate('test done');
});
