/**
 * A re-rating whose workflow fails deterministically says so through the API. Before, the workflow ended failed
 * (`BillingStatus = rerate_failed`, seen only in the Temporal UI) and the row kept its last status: GET answered
 * `approved` for good, and finance waited for a credit that was never coming.
 *
 *   May: 10.00 fee + 10 calls at 1.00 = 20.00, marked uncollectible (never paid)
 *   re-rated at 0.80 a call: a credit of 2.00, approved -> carrying it out fails `invoice_not_paid`
 *   -> GET: `failed` with the code; deciding it again is a conflict; a new re-rating of the invoice is not blocked
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { settledRerate } from '../support/rerate';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'rf_calls', name: 'Calls', event_type: 'rf.call', aggregation: 'count' });
  const headers = (await createTestApiKey(db, 'admin')).headers;
  api = await serve(createApp({ db, temporal: env.client }), { headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const callsAt = (unitPrice: string) => [{ metricCode: 'rf_calls', price: { model: 'per_unit', unitPrice } }] as never;
const may = { start: '2029-05-01T00:00:00.000Z', end: '2029-06-01T00:00:00.000Z' };
const june = { start: '2029-06-01T00:00:00.000Z', end: '2029-07-01T00:00:00.000Z' };

/** May's invoice of 20.00, given up on: uncollectible, nothing paid, so a credit has nothing to come off. */
async function uncollectibleMay() {
  const customer = await insertCustomer(db, { external_id: 'rf-uncollectible' });
  const plan = await insertPlan(db, { code: 'rf-plan', billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('1.00') });
  await insertPlan(db, { code: 'rf-plan', version: 2, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.80') });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'canceled', workflow_id: 'direct:rf', start_at: new Date(may.start), current_period_start: new Date(may.start), current_period_end: new Date(may.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `rf-${i}`, eventType: 'rf.call', occurredAt: new Date('2029-05-15T00:00:00Z'), properties: {} })));
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(may.start), periodEnd: new Date(may.end), planId: plan.id, charges: plan.charges as never }),
  );
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: june, usagePeriod: may });
  await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'uncollectible' });
  return invoice.invoiceId;
}

test('a re-rating that fails when carried out shows failed with its code, and a new one of the invoice may be asked', async () => {
  const invoiceId = await uncollectibleMay();
  const requested = await api.call('POST', `/v1/invoices/${invoiceId}/rerate`, { reason: 'price lowered', plan_code: 'rf-plan', plan_version: 2 });
  await settledRerate(env.connection, requested.json.id, (state) => state.status === 'proposed');
  expect((await api.call('POST', `/v1/rerates/${requested.json.id}/approve`, { reason: 'ok' })).status).toBe(200);
  const handle = env.client.workflow.getHandle(requested.json.workflow_id);
  await eventually(async () => ((await handle.describe()).status.name === 'FAILED' ? true : undefined), 'the re-rating workflow to fail');

  const failed = await api.call('GET', `/v1/rerates/${requested.json.id}`);
  expect(failed.json).toMatchObject({ status: 'failed', failure: { code: 'invoice_not_paid', message: expect.stringContaining('uncollectible') }, result_invoice_id: null });
  expect(await db('invoices').where({ credited_invoice_id: invoiceId })).toEqual([]);
  expect(await db('audit_log').where({ subject_id: invoiceId, action: 'rerate.failed' }).pluck('details')).toEqual([{ rerateId: requested.json.id, code: 'invoice_not_paid' }]);
  const conflict = await api.call('POST', `/v1/rerates/${requested.json.id}/approve`, { reason: 'again' });
  expect({ status: conflict.status, code: conflict.json?.code }).toEqual({ status: 409, code: 'rerate_not_awaiting_decision' });

  // The failed one holds nothing: once the invoice is fixed, finance asks again and gets a proposal.
  const again = await api.call('POST', `/v1/invoices/${invoiceId}/rerate`, { reason: 'price lowered, again', plan_code: 'rf-plan', plan_version: 2 });
  expect(again.status).toBe(202);
  expect(await settledRerate(env.connection, again.json.id, (state) => state.status === 'proposed')).toMatchObject({ outcome: 'credit', total: '-2.00' });
});
