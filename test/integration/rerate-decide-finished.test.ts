/**
 * Deciding a re-rating whose workflow has already ended (nothing to do, carried out, rejected, failed) is a
 * conflict, answered as application/problem+json: finance double-clicks "approve", or approves a proposal that
 * expired a moment before. It was a 500 (the update on a closed workflow failed with a not-found error).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import { createInvoicingActivities } from '../../activities/invoicing';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { serve, TestHttp, type TestResponse } from '../support/http';
import { settledRerate } from '../support/rerate';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'df_calls', name: 'Calls', event_type: 'df.call', aggregation: 'count' });
  const headers = (await createTestApiKey(db, 'admin')).headers;
  api = await serve(createApp({ db, temporal: env.client }), { headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const callsAt = (unitPrice: string) => [{ metricCode: 'df_calls', price: { model: 'per_unit', unitPrice } }] as never;
const may = { start: '2029-05-01T00:00:00.000Z', end: '2029-06-01T00:00:00.000Z' };
const june = { start: '2029-06-01T00:00:00.000Z', end: '2029-07-01T00:00:00.000Z' };

/** May's invoice: 10.00 fee + 10 calls at 1.00 = 20.00, paid. */
async function invoicedMay(name: string) {
  const customer = await insertCustomer(db, { external_id: name });
  const plan = await insertPlan(db, { code: `df-${name}`, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('1.00') });
  await insertPlan(db, { code: `df-${name}`, version: 2, billing_interval: 'P1M', flat_fee: '10.00', charges: callsAt('0.80') });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: `direct:${name}`, start_at: new Date(may.start), current_period_start: new Date(may.start), current_period_end: new Date(may.end) })
    .returning('*');
  await insertUsageEvents(db, Array.from({ length: 10 }, (_, i) => ({ customerId: customer.id, eventId: `${name}-${i}`, eventType: 'df.call', occurredAt: new Date('2029-05-15T00:00:00Z'), properties: {} })));
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(may.start), periodEnd: new Date(may.end), planId: plan.id, charges: plan.charges as never }),
  );
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: june, usagePeriod: may });
  await db('payments').insert({ invoice_id: invoice.invoiceId, attempt: 1, status: 'succeeded', amount: '20.00', currency: 'USD', idempotency_key: `payment:${invoice.invoiceId}:1`, gateway_charge_id: `ch_${name}` });
  await db('invoices').where({ id: invoice.invoiceId }).update({ status: 'paid' });
  return { invoiceId: invoice.invoiceId, planCode: `df-${name}` };
}

const expectConflict = (response: TestResponse) => {
  expect({ status: response.status, type: response.type, code: response.json?.code }).toEqual({
    status: 409,
    type: expect.stringContaining('application/problem+json'),
    code: 'rerate_not_awaiting_decision',
  });
};

test('approving a re-rating that found nothing to do is a conflict, not a 500', async () => {
  const { invoiceId } = await invoicedMay('nothing');
  const requested = await api.call('POST', `/v1/invoices/${invoiceId}/rerate`, { reason: 'audit' });
  expect(requested.status).toBe(202);
  await settledRerate(env.connection, requested.json.id, (state) => state.status === 'nothing_to_do');
  expectConflict(await api.call('POST', `/v1/rerates/${requested.json.id}/approve`, { reason: 'ok' }));
  expectConflict(await api.call('POST', `/v1/rerates/${requested.json.id}/reject`, { reason: 'no' }));
});

test('approving a re-rating a second time after it was carried out is a conflict, and credits nothing more', async () => {
  const { invoiceId, planCode } = await invoicedMay('twice');
  const requested = await api.call('POST', `/v1/invoices/${invoiceId}/rerate`, { reason: 'price lowered', plan_code: planCode, plan_version: 2 });
  await settledRerate(env.connection, requested.json.id, (state) => state.status === 'proposed');
  expect((await api.call('POST', `/v1/rerates/${requested.json.id}/approve`, { reason: 'ok' })).status).toBe(200);
  await settledRerate(env.connection, requested.json.id, (state) => state.status === 'finalized');
  await env.sleep(60_000); // the credit note's refund
  expectConflict(await api.call('POST', `/v1/rerates/${requested.json.id}/approve`, { reason: 'ok again' }));
  expect((await db('invoices').where({ credited_invoice_id: invoiceId })).map((note) => Number(note.total).toFixed(2))).toEqual(['2.00']);
});

test('approving a proposal whose workflow ended meanwhile (terminated by ops) is a conflict too', async () => {
  const { invoiceId, planCode } = await invoicedMay('ended');
  const requested = await api.call('POST', `/v1/invoices/${invoiceId}/rerate`, { reason: 'price lowered', plan_code: planCode, plan_version: 2 });
  await settledRerate(env.connection, requested.json.id, (state) => state.status === 'proposed');
  await env.client.workflow.getHandle(requested.json.workflow_id).terminate('ops');
  expectConflict(await api.call('POST', `/v1/rerates/${requested.json.id}/approve`, { reason: 'ok' }));
  expect(await db('invoices').where({ credited_invoice_id: invoiceId })).toEqual([]);
});
