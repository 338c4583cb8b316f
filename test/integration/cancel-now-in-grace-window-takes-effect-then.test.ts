/**
 * A cancellation now accepted in the usage grace window after a period boundary, while the main loop waits to close
 * the closed period's usage before writing the new period's invoice. The cancellation is answered "canceled" at
 * once, effective then; the service ends then. The closed period's on-time late usage is still billed (on the period
 * invoice after the window), and the closing invoice credits the unused time from the cancellation and bills usage
 * up to it; usage stamped after it is refused.
 *
 * Before, the end was taken where the main loop got to it, after the grace window: the closing invoice credited
 * the unused fee from the window's end (two days of fee kept from a customer who had left), billed usage up to
 * there, and ingestion accepted usage stamped after the cancellation until then.
 * Time-skipping server and a real Postgres; the API judges events at the server's time.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import type { PlanSettings } from '../../domain/plan-terms';
import type { Database } from '../../store/database';
import type { InvoiceRow } from '../../store/invoices';
import { insertUsageEvents } from '../../store/usage';
import { cancelSubscriptionUpdate, SUBSCRIPTION_WORKFLOW_TYPE, SubscriptionState, TASK_QUEUE } from '../../workflows/definitions';
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
  await db('billable_metrics').insert({ code: 'grace_tokens', name: 'Tokens', event_type: 'grace.request', aggregation: 'sum', property: 'tokens' });
  const key = await createTestApiKey(db, 'admin');
  api = await serve(createApp({ db, temporal: env.client, now: () => serverNow }), { headers: key.headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

// Before the fix (patch cancel-now-takes-effect-when-accepted): credited -29.00 (from Mar 3), not -30.50, and the
// event stamped after the cancellation was accepted and billed 1.00.
test('a cancellation now in the grace window takes effect when asked: unused time credited from then, later usage refused', async () => {
  // Timeline (2032, March has 31 days), 31.00 a month (1.00 a day), 0.01 a token, usage grace window P2D:
  //   Feb 1 INV 31.00; Feb 28 100 tokens (sent Mar 1 06:00, on time);
  //   Mar 1 12:00 cancel now -> canceled (effective Mar 1 12:00);
  //   Mar 1 18:00 an event stamped Mar 1 18:00 is refused (after the end);
  //   Mar 3 the window ends: INV [Mar 1] 31.00 + Feb usage 1.00 = 32.00;
  //   closing INV: unused Mar 1 12:00 -> Apr 1 = 30.5 days = -30.50.
  const settings: PlanSettings = { creditUnusedOnCancel: true, usageGracePeriod: 'P2D' };
  const plan = await insertPlan(db, {
    code: 'cancel-in-grace',
    billing_interval: 'P1M',
    flat_fee: '31.00',
    settings: settings as Record<string, unknown>,
    charges: [{ metricCode: 'grace_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as unknown[],
  });
  const customer = await insertCustomer(db);
  const { row, input, workflowId } = await insertSubscription(db, customer, plan, new Date('2032-02-01T00:00:00Z'));
  const handle = await env.client.workflow.start(SUBSCRIPTION_WORKFLOW_TYPE, { workflowId, taskQueue: TASK_QUEUE, args: [input] });

  await stack.advanceTo('2032-02-29T00:00:00Z');
  await stack.advanceTo('2032-03-01T06:00:00Z', 3_600_000);
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'feb-28', eventType: 'grace.request', occurredAt: new Date('2032-02-28T00:00:00Z'), properties: { tokens: 100 } }]);
  await stack.advanceTo('2032-03-01T12:00:00Z', 3_600_000);
  const answer = await handle.executeUpdate(cancelSubscriptionUpdate, { args: [{ at: 'now', reason: 'leaving', requestedBy: 'test' }] });
  expect(answer).toMatchObject({ status: 'canceled', effectiveAt: expect.stringMatching(/^2032-03-01T12:00/) });

  await stack.advanceTo('2032-03-01T18:00:00Z', 3_600_000);
  serverNow = await stack.now();
  const late = await api.call('POST', '/v1/events', { id: 'after-cancel', customer: customer.external_id, type: 'grace.request', timestamp: '2032-03-01T18:00:00Z', properties: { tokens: 100 } });
  const lateVerdict = late.status === 202 || late.status === 200 ? 'accepted' : (late.json.errors?.[0]?.code ?? late.json.code);

  expect((await stack.resultOf<SubscriptionState>(handle)).status).toBe('canceled');
  const invoices: InvoiceRow[] = await db('invoices').where({ subscription_id: row.id }).orderBy([{ column: 'period_start' }, { column: 'created_at' }]);
  const lines = async (invoice: InvoiceRow) =>
    (await db('invoice_lines').where({ invoice_id: invoice.id }).orderBy('position')).map((line: { kind: string; amount: string }) => [line.kind, Number(line.amount).toFixed(2)]);
  const summary = [];
  for (const invoice of invoices) summary.push([invoice.kind, Number(invoice.total).toFixed(2), await lines(invoice)]);
  expect({ lateVerdict, summary }).toEqual({
    lateVerdict: 'timestamp_after_subscription_end',
    summary: [
      ['period', '31.00', [['flat_fee', '31.00']]],
      ['period', '32.00', [['flat_fee', '31.00'], ['usage', '1.00']]],
      ['closing', '-30.50', [['usage', '0.00'], ['proration', '-30.50']]], // no usage from Mar 1 to 12:00
    ],
  });
});
