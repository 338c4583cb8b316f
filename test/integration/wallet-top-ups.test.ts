/**
 * Top-ups, auto-recharge and grant expiry on the per-customer wallet workflow (issue 12 point 3, docs/wallets.md),
 * against a real Postgres, a time-skipping Temporal server, a billing worker and the HTTP API with its balance
 * watcher. Every amount is a decimal string checked to the cent.
 *
 * Plans here bill 0.01 per token with no flat fee and no credit bucket, so the available balance is
 * grants - (tokens x 0.01) until the period is invoiced.
 */
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createInvoicingActivities } from '../../activities/invoicing';
import { createActivities } from '../../activities';
import { createApp } from '../../api/app';
import { WalletBalanceWatcher } from '../../api/wallet-signals';
import { SandboxGateway } from '../../payments/sandbox-gateway';
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { closeUsage } from '../../store/usage';
import { observeWalletBalance, requestTopUp } from '../../store/wallet-topups';
import { ensureWallet, findWallet, updateWalletSettings } from '../../store/wallets';
import { TASK_QUEUE, walletChangedSignal, walletWorkflowId } from '../../workflows/definitions';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { recordHistory } from '../support/histories';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { serve, TestHttp } from '../support/http';
import { createTimeSkippingEnvironment, workflowBundle } from '../support/temporal';

const DAY = 86_400_000;

let env: TestWorkflowEnvironment;
let db: Database;
let api: TestHttp;
let watcher: WalletBalanceWatcher;
let worker: Worker;
let running: Promise<void>;
let app: TestApiKey;
let finance: TestApiKey;
let serverNow = new Date();
/** The crash test's switch: how many settleTopUp calls still fail (1st before the grant, 2nd after it committed). */
let settleFailures = 0;
let planRow: Awaited<ReturnType<typeof insertPlan>>;

beforeAll(async () => {
  [env, db] = await Promise.all([createTimeSkippingEnvironment(), createTestDatabase()]);
  serverNow = new Date(await env.currentTimeMs());
  const activities = createActivities({ db, gateway: new SandboxGateway(db) });
  const realSettle = activities.settleTopUp;
  worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowBundle: await workflowBundle(),
    activities: {
      ...activities,
      // Simulated crashes between the charge and the grant: the worker dies before the grant is written, then
      // again after it committed but before the workflow heard so. The retries must end with one grant.
      async settleTopUp(request: Parameters<typeof realSettle>[0]) {
        if (settleFailures === 2) {
          settleFailures -= 1;
          throw new Error('worker crashed before the grant');
        }
        if (settleFailures === 1) {
          settleFailures -= 1;
          await realSettle(request);
          throw new Error('worker crashed after the grant committed');
        }
        return realSettle(request);
      },
    },
  });
  running = worker.run();
  watcher = new WalletBalanceWatcher(db, env.client, { flushIntervalMs: 100, now: () => serverNow, log: () => undefined });
  watcher.start();
  api = await serve(createApp({ db, temporal: env.client, walletWatcher: watcher, now: () => serverNow }));
  [app, finance] = await Promise.all([createTestApiKey(db, 'app'), createTestApiKey(db, 'finance')]);
  await db('billable_metrics').insert({ code: 'wt_tokens', name: 'Tokens', event_type: 'wt.llm', aggregation: 'sum', property: 'tokens' });
  planRow = await insertPlan(db, { code: 'wt-prepaid', billing_interval: 'P1M', flat_fee: '0', charges: [{ metricCode: 'wt_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }] as never });
});

afterAll(async () => {
  await watcher?.stop();
  await api?.close();
  worker?.shutdown();
  await running;
  await Promise.all([env?.teardown(), db?.destroy()]);
});

/** A customer with an active subscription whose current period contains the server's now. */
async function subscribedCustomer(name: string, paymentMethod: string): Promise<{ customer: CustomerRow; subscriptionId: string; period: { start: Date; end: Date } }> {
  const customer = await insertCustomer(db, { external_id: name, payment_method: paymentMethod });
  const period = { start: new Date(serverNow.getTime() - DAY), end: new Date(serverNow.getTime() + 30 * DAY) };
  const { row } = await insertSubscription(db, customer, planRow, period.start);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: period.start, current_period_end: period.end });
  return { customer, subscriptionId: row.id, period };
}

let eventSeq = 0;
async function useTokens(customer: CustomerRow, tokens: number): Promise<void> {
  eventSeq += 1;
  const posted = await api.call('POST', '/v1/events', { id: `wt-${eventSeq}`, customer: customer.external_id, type: 'wt.llm', timestamp: serverNow.toISOString(), properties: { tokens } }, app.headers);
  expect(posted.json).toMatchObject({ accepted: 1 });
}

async function wallet(customer: CustomerRow) {
  const response = await api.call('GET', `/v1/customers/${customer.id}/wallet`, undefined, app.headers);
  expect(response.status).toBe(200);
  return response.json;
}

async function topUps(customer: CustomerRow) {
  return db('wallet_top_ups').where({ customer_id: customer.id }).orderBy('created_at');
}

async function outbox(customer: CustomerRow, eventType: string) {
  return (await db('outbox').where({ event_type: eventType }).orderBy('id')).filter((row) => row.payload.customerId === customer.id);
}

async function sandboxCharges(customer: CustomerRow) {
  const invoiceIds = (await db('invoices').where({ customer_id: customer.id, kind: 'wallet_top_up' }).select('id')).map((row) => row.id);
  return db('sandbox_gateway_charges').whereIn('reference', invoiceIds);
}

async function skip(ms: number): Promise<void> {
  await env.sleep(ms);
  serverNow = new Date(await env.currentTimeMs());
}

test('a top-up sells credits: a paid invoice, then one purchased grant; the period invoice draws on it', async () => {
  const { customer, subscriptionId, period } = await subscribedCustomer('wt-topup', 'pm_sandbox_ok');
  await useTokens(customer, 1240); // 12.40 of usage in the period so far

  const topUp = await api.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, { amount: '50.00', currency: 'USD' }, { ...app.headers, 'Idempotency-Key': 'topup-1' });
  expect(topUp.status).toBe(201);
  expect(topUp.json).toMatchObject({ kind: 'top_up', status: 'paid', amount: '50.00', currency: 'USD', decline_code: null });
  expect(topUp.json.invoice).toMatchObject({ status: 'paid', total: '50.00', currency: 'USD', number: expect.stringMatching(/^INV-\d{6}$/) });
  expect(topUp.json.grant).toMatchObject({ source: 'purchased', amount: '50.00', remaining: '50.00', expires_at: null });

  // The same Idempotency-Key again: the same top-up, nothing charged twice.
  const repeat = await api.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, { amount: '50.00', currency: 'USD' }, { ...app.headers, 'Idempotency-Key': 'topup-1' });
  expect(repeat.json.id).toBe(topUp.json.id);
  expect(await sandboxCharges(customer)).toHaveLength(1);
  // The key for another amount is refused: by its stored answer, and once that has expired, by the route, which
  // finds the top-up the key derives and answers with it only for the same customer and amount.
  const otherAmount = { amount: '70.00', currency: 'USD' };
  expect((await api.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, otherAmount, { ...app.headers, 'Idempotency-Key': 'topup-1' })).json.code).toBe('idempotency_key_reused');
  const forgetful = await serve(createApp({ db, temporal: env.client, walletWatcher: watcher, now: () => serverNow, idempotency: { expireAfterMs: 0 } }));
  try {
    const later = await forgetful.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, otherAmount, { ...app.headers, 'Idempotency-Key': 'topup-1' });
    expect(later).toMatchObject({ status: 409, json: { code: 'idempotency_key_reused' } });
  } finally {
    await forgetful.close();
  }
  expect(await topUps(customer)).toHaveLength(1);
  expect(await sandboxCharges(customer)).toHaveLength(1);
  expect((await api.call('GET', `/v1/customers/${customer.id}/wallet/top-ups/${topUp.json.id}`, undefined, finance.headers)).json.status).toBe('paid');

  expect(await wallet(customer)).toMatchObject({ balance: '50.00', pending_usage: '12.40', available: '37.60' });

  // The period closes and is invoiced: the usage is paid from the purchased grant.
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId, customerId: customer.id, periodStart: period.start, periodEnd: period.end, planId: planRow.id, charges: planRow.charges as never }),
  );
  const usagePeriod = { start: period.start.toISOString(), end: period.end.toISOString() };
  const nextPeriod = { start: period.end.toISOString(), end: new Date(period.end.getTime() + 30 * DAY).toISOString() };
  const invoice = await createInvoicingActivities(db).createPeriodInvoice({ subscriptionId, kind: 'period', flatFeePeriod: nextPeriod, usagePeriod });
  const lines = await db('invoice_lines').where({ invoice_id: invoice.invoiceId }).orderBy('position');
  expect(lines.map((line) => [line.kind, Number(line.amount).toFixed(2)])).toEqual([
    ['usage', '12.40'],
    ['credit', '-12.40'],
  ]);
  expect(lines[1].description).toBe('Credits applied (purchased credit)');
  expect(invoice.total).toBe('0.00');
  expect(String((await findWallet(db, customer.id, 'USD'))!.balance)).toBe('37.600000000000');
});

test('a declined top-up answers with the invoice uncollectible and creates no grant', async () => {
  const { customer } = await subscribedCustomer('wt-declined', 'pm_sandbox_expired');
  const topUp = await api.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, { amount: '25.00' }, app.headers);
  expect(topUp.status).toBe(201);
  expect(topUp.json).toMatchObject({ status: 'declined', decline_code: 'expired_card', grant: null, amount: '25.00' });
  expect(topUp.json.invoice).toMatchObject({ status: 'uncollectible', total: '25.00' });
  expect(await db('wallet_grants').join('wallets', 'wallets.id', 'wallet_grants.wallet_id').where('wallets.customer_id', customer.id)).toHaveLength(0);
  expect(await outbox(customer, 'wallet.top_up_failed')).toHaveLength(1);

  // Bad input writes nothing: too many decimals, a customer without a card.
  expect((await api.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, { amount: '1.001' }, app.headers)).json.code).toBe('validation_failed');
  const cardless = await insertCustomer(db, { external_id: 'wt-cardless', payment_method: null });
  const refused = await api.call('POST', `/v1/customers/${cardless.id}/wallet/top-ups`, { amount: '10.00' }, app.headers);
  expect([refused.status, refused.json.code]).toEqual([422, 'payment_method_missing']);
  expect(await topUps(cardless)).toHaveLength(0);
});

test('a crash between the charge and the grant: one charge, one grant, once', async () => {
  const { customer } = await subscribedCustomer('wt-crash', 'pm_sandbox_ok');
  settleFailures = 2;
  const topUp = await api.call('POST', `/v1/customers/${customer.id}/wallet/top-ups`, { amount: '40.00' }, app.headers);
  const settled = await eventually(async () => {
    const row = (await topUps(customer))[0];
    return row?.status === 'paid' ? row : undefined;
  }, 'the top-up paid after the simulated crashes');
  expect(settleFailures).toBe(0);
  expect(settled.id).toBe(topUp.json.id);
  // The second crash happened after the grant committed; let the third try (backoff 2 s) run and find it.
  await new Promise((resolve) => setTimeout(resolve, 4000));
  expect(await sandboxCharges(customer)).toHaveLength(1);
  const wallet_ = (await findWallet(db, customer.id, 'USD'))!;
  const grants = await db('wallet_grants').where({ wallet_id: wallet_.id });
  expect(grants.map((grant) => [grant.grant_key, grant.source, String(grant.amount)])).toEqual([[`top-up:${settled.id}`, 'purchased', '40.000000000000']]);
  const ledger = await db('wallet_ledger').where({ wallet_id: wallet_.id }).orderBy('id');
  expect(ledger.map((entry) => [entry.kind, String(entry.amount), String(entry.balance_after)])).toEqual([['grant', '40.000000000000', '40.000000000000']]);
  expect((await wallet(customer)).balance).toBe('40.00');
});

test('auto-recharge: crossing the threshold twice in one period buys twice; a balance that stays low buys nothing more', async () => {
  const { customer } = await subscribedCustomer('wt-twice', 'pm_sandbox_ok');
  // The grant first: a wallet configured while below its threshold would recharge at once.
  await api.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '15.00', source: 'promotional' }, finance.headers);
  await watcher.flush();
  const settings = await api.call('PUT', `/v1/customers/${customer.id}/wallet`, { recharge_threshold: '10.00', recharge_amount: '20.00', low_balance_threshold: '10.00' }, app.headers);
  expect(settings.json).toMatchObject({ recharge_threshold: '10.00', recharge_amount: '20.00', low_balance_threshold: '10.00', grant_expiry_notice: 'P7D' });
  await eventually(async () => (await db('wallet_balance_watch').join('wallets', 'wallets.id', 'wallet_balance_watch.wallet_id').where('wallets.customer_id', customer.id).first())?.low_balance_armed, 'the watch armed at 15.00');

  // 6.00 of usage: 9.00 available < 10.00, the first crossing -> recharge of 20.00 -> 29.00.
  await useTokens(customer, 600);
  await eventually(async () => (await topUps(customer)).filter((row) => row.status === 'paid').length === 1, 'the first recharge');
  expect(await wallet(customer)).toMatchObject({ balance: '35.00', pending_usage: '6.00', available: '29.00' });

  // 20.00 more: 9.00 again, a second crossing (the recharge lifted the balance back over the threshold).
  await useTokens(customer, 2000);
  await eventually(async () => (await topUps(customer)).filter((row) => row.status === 'paid').length === 2, 'the second recharge');
  expect(await wallet(customer)).toMatchObject({ balance: '55.00', pending_usage: '26.00', available: '29.00' });
  const rows = await topUps(customer);
  expect(rows.map((row) => [row.kind, row.request_key, String(row.amount), row.status])).toEqual([
    ['recharge', 'recharge:1', '20.000000000000', 'paid'],
    ['recharge', 'recharge:2', '20.000000000000', 'paid'],
  ]);
  expect(await sandboxCharges(customer)).toHaveLength(2);
  expect((await outbox(customer, 'wallet.recharged')).map((row) => row.payload.amount)).toEqual(['20.00', '20.00']);
  expect((await outbox(customer, 'wallet.low_balance')).map((row) => [row.payload.available, row.payload.threshold])).toEqual([
    ['9.00', '10.00'],
    ['9.00', '10.00'],
  ]);

  // A recharge too small to lift the balance back over the threshold: one purchase, then nothing (no loop).
  await api.call('PUT', `/v1/customers/${customer.id}/wallet`, { recharge_amount: '1.00' }, app.headers);
  await useTokens(customer, 2500); // 4.00 available: crossing 3 -> +1.00 -> 5.00, still below: disarmed
  await eventually(async () => (await topUps(customer)).filter((row) => row.status === 'paid').length === 3, 'the third recharge');
  await useTokens(customer, 100); // 4.00: still below, not a new crossing
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await watcher.flush();
  expect(await topUps(customer)).toHaveLength(3);
  expect((await wallet(customer)).available).toBe('4.00');
});

test('auto-recharge racing with itself: five observers of one crossing buy once', async () => {
  const customer = await insertCustomer(db, { external_id: 'wt-race', payment_method: 'pm_sandbox_ok' });
  const row = await ensureWallet(db, customer.id, 'USD');
  await updateWalletSettings(db, row.id, { rechargeThreshold: '10.00', rechargeAmount: '30.00' });
  const observations = await Promise.all(Array.from({ length: 5 }, () => observeWalletBalance(db, row, serverNow)));
  expect(observations.filter((observation) => observation.rechargeTopUpId !== null)).toHaveLength(1);
  expect((await topUps(customer)).map((topUp) => [topUp.request_key, String(topUp.amount), topUp.status])).toEqual([['recharge:1', '30.000000000000', 'pending']]);
  // And through the API: ingestion's watcher sees the same crossing, already taken.
  watcher.record(customer.id);
  await watcher.flush();
  expect(await topUps(customer)).toHaveLength(1);
});

test('a declined recharge notifies once and does not loop; a later crossing with a good card recharges', async () => {
  const { customer } = await subscribedCustomer('wt-decline', 'pm_sandbox_declined');
  await api.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '20.00', source: 'promotional' }, finance.headers);
  await watcher.flush();
  await api.call('PUT', `/v1/customers/${customer.id}/wallet`, { recharge_threshold: '10.00', recharge_amount: '50.00' }, app.headers);
  await watcher.flush();

  await useTokens(customer, 1100); // 9.00 available: crossing 1, the card declines
  await eventually(async () => (await topUps(customer))[0]?.status === 'declined', 'the declined recharge');
  const [declined] = await topUps(customer);
  expect([declined.request_key, declined.decline_code]).toEqual(['recharge:1', 'insufficient_funds']);
  expect((await db('invoices').where({ id: declined.invoice_id }).first()).status).toBe('uncollectible');
  const failures = await outbox(customer, 'wallet.recharge_failed');
  expect(failures.map((row) => [row.payload.amount, row.payload.declineCode])).toEqual([['50.00', 'insufficient_funds']]);

  // More usage while below: no new crossing, no retry loop. A new card alone starts nothing either.
  await useTokens(customer, 100);
  await api.call('POST', `/v1/customers/${customer.id}/payment-method`, { payment_method: 'pm_sandbox_ok' }, app.headers);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await watcher.flush();
  expect(await topUps(customer)).toHaveLength(1);
  expect(await sandboxCharges(customer)).toHaveLength(1);
  expect((await wallet(customer)).available).toBe('8.00');

  // Finance adds 10.00 (18.00 available: re-armed); 9.00 of usage crosses again and the good card pays.
  await api.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '10.00', source: 'goodwill' }, finance.headers);
  await eventually(async () => (await db('wallet_balance_watch').join('wallets', 'wallets.id', 'wallet_balance_watch.wallet_id').where('wallets.customer_id', customer.id).first())?.recharge_armed, 'the recharge re-armed at 18.00');
  await useTokens(customer, 900);
  await eventually(async () => (await topUps(customer))[1]?.status === 'paid', 'the recharge after the later crossing');
  expect((await topUps(customer)).map((row) => [row.request_key, row.status])).toEqual([
    ['recharge:1', 'declined'],
    ['recharge:2', 'paid'],
  ]);
  expect(await wallet(customer)).toMatchObject({ balance: '80.00', pending_usage: '21.00', available: '59.00' });
  await recordHistory(env.client.workflow.getHandle(walletWorkflowId(customer.id)), 'wallet-recharge-after-decline');
});

test('grant expiry on a durable timer: the grant.expiring notice before, held while usage before it is not invoiced, then the expiry ledger entry', async () => {
  const { customer, subscriptionId, period } = await subscribedCustomer('wt-expiry', 'pm_sandbox_ok');
  const start = serverNow.getTime();
  await api.call('PUT', `/v1/customers/${customer.id}/wallet`, { grant_expiry_notice: 'P2D' }, app.headers);
  const expiresAt = new Date(start + 10 * DAY).toISOString();
  const grant = await api.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '25.00', source: 'promotional', expires_at: expiresAt }, finance.headers);
  expect(grant.status).toBe(201);
  // The wallet workflow is running and sleeping until the notice (8 days from now).
  await eventually(async () => {
    const description = await env.client.workflow.getHandle(walletWorkflowId(customer.id)).describe().catch(() => undefined);
    return description?.status.name === 'RUNNING';
  }, 'the wallet workflow running');
  await eventually(async () => (await db('wallet_balance_watch').join('wallets', 'wallets.id', 'wallet_balance_watch.wallet_id').where('wallets.customer_id', customer.id).first())?.depleted_armed, 'the balance seen above zero');

  await skip(7 * DAY);
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(await outbox(customer, 'grant.expiring')).toHaveLength(0);

  await skip(1 * DAY + 60_000); // past the notice time
  const [notice] = await eventually(async () => {
    const rows = await outbox(customer, 'grant.expiring');
    return rows.length > 0 ? rows : undefined;
  }, 'the grant.expiring notice');
  expect(notice.payload).toMatchObject({ grantId: grant.json.id, remaining: '25.00', currency: 'USD', expiresAt });
  expect((await wallet(customer)).balance).toBe('25.00');

  await skip(2 * DAY); // past the expiry
  // Held: the period that started before the expiry is not invoiced yet, and its invoice may still draw on the
  // grant for the usage before the expiry (docs/wallets.md). Nothing is expired before that invoice.
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(await db('wallet_ledger').where({ grant_id: grant.json.id, kind: 'expiry' })).toEqual([]);
  expect((await wallet(customer)).balance).toBe('25.00');
  // The period's invoice moves the subscription into its next period (as the invoice transaction does); the wallet
  // looks again just after the period's end.
  await db('subscriptions').where({ id: subscriptionId }).update({ current_period_start: period.end, current_period_end: new Date(period.end.getTime() + 30 * DAY) });
  await skip(period.end.getTime() - serverNow.getTime() + 2 * 60_000);
  const expiry = await eventually(async () => db('wallet_ledger').where({ grant_id: grant.json.id, kind: 'expiry' }).first(), 'the expiry ledger entry');
  expect([String(expiry.amount), String(expiry.balance_after)]).toEqual(['-25.000000000000', '0.000000000000']);
  const view = await wallet(customer);
  expect(view).toMatchObject({ balance: '0.00', available: '0.00', grants: [] });
  expect(view.ledger[0]).toMatchObject({ kind: 'expiry', amount: '-25.00', balance_after: '0.00', description: 'promotional credit expired' });
  // Once each: one notice, and the balance reaching zero reported once as depleted.
  expect(await outbox(customer, 'grant.expiring')).toHaveLength(1);
  await eventually(async () => (await outbox(customer, 'wallet.depleted')).length === 1, 'wallet.depleted');
  await recordHistory(env.client.workflow.getHandle(walletWorkflowId(customer.id)), 'wallet-expiry-notice');
});

test('the wallet workflow continues as new on a bounded history, and the new run keeps the expiry timer', async () => {
  const customer = await insertCustomer(db, { external_id: 'wt-continue', payment_method: 'pm_sandbox_ok' });
  const handle = await env.client.workflow.start('walletWorkflow', { taskQueue: TASK_QUEUE, workflowId: walletWorkflowId(customer.id), args: [{ customerId: customer.id, historyLimit: 40 }] });
  const firstRunId = handle.firstExecutionRunId;
  const expiresAt = new Date(serverNow.getTime() + 5 * DAY).toISOString();
  const grant = await api.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '7.50', source: 'goodwill', expires_at: expiresAt }, finance.headers);
  // Each wake-up is a turn of a few events (signals arriving together share one): wake it until it passes 40,
  // then stop: a signal racing the continue-as-new command makes the server hand the run another task first.
  const current = () => env.client.workflow.getHandle(walletWorkflowId(customer.id));
  await eventually(async () => {
    const description = await current().describe();
    if (description.runId !== firstRunId || description.historyLength >= 40) return true;
    await current().signal(walletChangedSignal);
    return false;
  }, 'the first run past 40 history events', { intervalMs: 150 });
  // History grows only when the workflow is woken, so a full one moves on at the next wake-up: this one.
  await new Promise((resolve) => setTimeout(resolve, 300));
  await current().signal(walletChangedSignal);
  let lastSeen = '';
  const runId = await eventually(async () => {
    const description = await current().describe();
    const events = (await current().fetchHistory()).events ?? [];
    lastSeen = `run ${description.runId === firstRunId ? 'first' : description.runId}, ${description.status.name}, ${description.historyLength} events, last: ${events.slice(-8).map((e) => `${e.eventType}${e.workflowTaskFailedEventAttributes ? ':' + e.workflowTaskFailedEventAttributes.cause + ':' + e.workflowTaskFailedEventAttributes.failure?.message : ''}`).join(' ')}`;
    return description.runId !== firstRunId && description.status.name === 'RUNNING' ? description.runId : undefined;
  }, () => `a new run of the wallet workflow (${lastSeen})`);
  expect(runId).not.toBe(firstRunId);

  await skip(5 * DAY + 60_000);
  const expiry = await eventually(async () => db('wallet_ledger').where({ grant_id: grant.json.id, kind: 'expiry' }).first(), 'the expiry written by the new run');
  expect(String(expiry.amount)).toBe('-7.500000000000');
  expect(await outbox(customer, 'grant.expiring')).toHaveLength(1);
});

test('a purchase whose wake-up was lost (the API died after the commit) is picked up on the next event', async () => {
  const { customer } = await subscribedCustomer('wt-lost-wake', 'pm_sandbox_ok');
  // The row committed, the signal never sent.
  const { row } = await requestTopUp(db, { customerId: customer.id, currency: 'USD', kind: 'top_up', requestKey: 'api:lost', amount: '12.34', requestedBy: 'test' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect((await topUps(customer))[0].status).toBe('pending');
  await useTokens(customer, 1);
  await eventually(async () => (await topUps(customer))[0].status === 'paid', 'the lost top-up paid');
  expect((await api.call('GET', `/v1/customers/${customer.id}/wallet/top-ups/${row.id}`, undefined, app.headers)).json).toMatchObject({ status: 'paid', amount: '12.34', grant: { amount: '12.34', source: 'purchased' } });
});
