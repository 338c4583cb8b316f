/**
 * A re-rating whose cash credit is more than the re-rated invoice's payment holds issues one credit note per paid
 * invoice of the period, each with a pending refund. Before, its workflow sent only the first note's refund to the
 * gateway; the others stayed pending until the janitor (every 10 minutes, refunds pending 15 minutes and more) sent
 * them. And a refund the gateway refused after the re-rating was carried out (its amount credited to the wallet) was
 * shown nowhere on the re-rating: it said `finalized`, as if the cash had gone back.
 *
 *   10.00 a month + 0.25 a unit, threshold 100.00
 *   Jan 10  450 units = 112.50: threshold invoice, paid by a card that refuses refunds (pm_sandbox_refund_declined)
 *   Feb 1   500 units = 125.00: period invoice 10.00 + 125.00 − 112.50 = 22.50, paid by pm_sandbox_ok
 *   re-rated at 0.02 a unit: 10.00, a credit of 115.00; the period invoice holds 22.50, the threshold invoice 112.50,
 *   neither all of it: 22.50 against the period invoice (refunded to the card), 92.50 against the threshold invoice
 *   (refused: 92.50 of wallet credit). Paid 135.00, given back 22.50 + 92.50: 20.00 = 10.00 + 500 × 0.02.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createApp } from '../../api/app';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createPaymentActivities } from '../../activities/payments';
import { createRefundActivities } from '../../activities/refunds';
import { createThresholdActivities } from '../../activities/thresholds';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import { closeUsage, insertUsageEvents } from '../../store/usage';
import { findWallet } from '../../store/wallets';
import { createTestApiKey } from '../support/api-keys';
import { startTimeSkippingStack, TimeSkippingStack } from '../support/billing-stack';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan } from '../support/fixtures';
import { recordHistory } from '../support/histories';
import { serve, TestHttp } from '../support/http';
import { settledRerate } from '../support/rerate';

let stack: TimeSkippingStack;
let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;

beforeAll(async () => {
  stack = await startTimeSkippingStack();
  ({ env, db } = stack);
  await db('billable_metrics').insert({ code: 'rn_units', name: 'Units', event_type: 'rn.units', aggregation: 'sum', property: 'n' });
  const headers = (await createTestApiKey(db, 'admin')).headers;
  api = await serve(createApp({ db, temporal: env.client }), { headers });
});

afterAll(async () => {
  await api?.close();
  await stack?.stop();
});

const january = { start: '2030-01-01T00:00:00.000Z', end: '2030-02-01T00:00:00.000Z' };
const february = { start: '2030-02-01T00:00:00.000Z', end: '2030-03-01T00:00:00.000Z' };
const money = (value: unknown) => Number(value).toFixed(2);

test('every note of a re-rating is refunded when it is carried out, and a refused one shows credited to the wallet', async () => {
  const customer = await insertCustomer(db, { external_id: 'rn-every-note', payment_method: 'pm_sandbox_refund_declined' });
  const plan = (version: number, unitPrice: string) =>
    insertPlan(db, {
      code: 'rn-plan', version, billing_interval: 'P1M', flat_fee: '10.00',
      charges: [{ metricCode: 'rn_units', price: { model: 'per_unit', unitPrice } }] as never,
      settings: { usageThresholds: { amounts: ['100.00'] } },
    });
  const listed = await plan(1, '0.25');
  await plan(2, '0.02');
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: listed.id, status: 'active', workflow_id: 'direct:rn', start_at: new Date(january.start), current_period_start: new Date(january.start), current_period_end: new Date(january.end) })
    .returning('*');
  const units = (id: string, n: string, at: string) => insertUsageEvents(db, [{ customerId: customer.id, eventId: id, eventType: 'rn.units', occurredAt: new Date(at), properties: { n } }]);
  const payments = createPaymentActivities(db, new SandboxGateway(db));

  await units('u1', '450', '2030-01-10T00:00:00Z');
  const threshold = (await createThresholdActivities(db).createThresholdInvoice({ subscriptionId: subscription.id, usageStart: january.start, at: '2030-01-10T01:00:00.000Z', planId: listed.id })).invoice!;
  expect(await payments.chargeInvoice({ invoiceId: threshold.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });
  await units('u2', '50', '2030-01-20T00:00:00Z');
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: subscription.id, customerId: customer.id, periodStart: new Date(january.start), periodEnd: new Date(january.end), planId: listed.id, charges: listed.charges as never }));
  const period = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId: subscription.id, kind: 'period', flatFeePeriod: february, usagePeriod: january });
  expect([threshold.total, period.total]).toEqual(['112.50', '22.50']);
  await db('customers').where({ id: customer.id }).update({ payment_method: 'pm_sandbox_ok' });
  expect(await payments.chargeInvoice({ invoiceId: period.invoiceId, attempt: 1 })).toMatchObject({ outcome: 'succeeded' });

  const requested = await api.call('POST', `/v1/invoices/${period.invoiceId}/rerate`, { reason: 'unit price was wrong', plan_code: 'rn-plan', plan_version: 2 });
  expect(await settledRerate(env.connection, requested.json.id, (state) => state.status === 'proposed')).toMatchObject({ outcome: 'credit', total: '-115.00' });
  expect((await api.call('POST', `/v1/rerates/${requested.json.id}/approve`, { reason: 'ok' })).status).toBe(200);
  const handle = env.client.workflow.getHandle(requested.json.workflow_id);
  await eventually(async () => ((await handle.describe()).status.name === 'COMPLETED' ? true : undefined), 'the re-rating workflow to complete');
  await recordHistory(handle, 'rerate-credit-refunds');

  // Both refunds answered by the time the workflow ends (before: 22.50 succeeded, 92.50 pending for the janitor).
  const refunds = await db('refunds').whereIn('invoice_id', [period.invoiceId, threshold.invoiceId]).orderBy('amount');
  expect(refunds.map((refund) => [refund.invoice_id, money(refund.amount), refund.status])).toEqual([
    [period.invoiceId, '22.50', 'succeeded'],
    [threshold.invoiceId, '92.50', 'failed'],
  ]);
  expect(money((await findWallet(db, customer.id, 'USD'))!.balance)).toBe('92.50');

  // The re-rating stays finalized, and says where each note's money went.
  const shown = (await api.call('GET', `/v1/rerates/${requested.json.id}`)).json;
  expect(shown).toMatchObject({ status: 'finalized', result_invoice_id: shown.refunds[0].credit_note_id });
  expect(shown.refunds.map((note: { invoice_id: string; amount: string; outcome: string; refund: { status: string; failure_code: string | null } }) => [note.invoice_id, note.amount, note.outcome, note.refund.status, note.refund.failure_code])).toEqual([
    [period.invoiceId, '22.50', 'refunded', 'succeeded', null],
    [threshold.invoiceId, '92.50', 'credited_to_wallet', 'failed', 'refund_declined'],
  ]);

  // The step retried after the gateway refunded but before its answer was recorded: sent again under the same key,
  // the gateway answers with the refund it made; nothing moves twice.
  await db('refunds').where({ invoice_id: period.invoiceId }).update({ status: 'pending', gateway_refund_id: null });
  const again = await createRefundActivities(db, new SandboxGateway(db)).refundRerateCreditNotes({ rerateId: requested.json.id });
  expect(again.refunds.map((note) => note.outcome)).toEqual(['refunded', 'credited_to_wallet']);
  expect((await db('sandbox_gateway_refunds').select('amount')).map((row) => money(row.amount))).toEqual(['22.50']);
  expect(money((await findWallet(db, customer.id, 'USD'))!.balance)).toBe('92.50');
});
