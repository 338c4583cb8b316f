/**
 * Entitlements (issue 12): GET /v1/customers/:id/entitlements[/:feature] answers from the running totals, and the
 * hard limit at ingestion agrees with it at every step: has_access turns false exactly when the next event is
 * refused with `entitlement_limit_reached`.
 */
import type { Database } from '../../store/database';
import type { CustomerRow } from '../../store/customers';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { eventually } from '../support/eventually';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';
import { createGrant } from '../../store/wallets';

let db: Database;
let api: ApiOnly;
let app: TestApiKey;
let finance: TestApiKey;
let acme: CustomerRow;
let globex: CustomerRow;
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
const periodEnd = new Date(periodStart.getTime() + 7_200_000);
const inPeriod = () => new Date(Date.now() - 60_000).toISOString();

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  app = await createTestApiKey(db, 'app');
  finance = await createTestApiKey(db, 'finance');
  for (const metric of [
    { code: 'ent_calls', name: 'API calls', event_type: 'ent.call', aggregation: 'count' },
    { code: 'ent_tokens', name: 'Tokens', event_type: 'ent.llm', aggregation: 'sum', property: 'tokens' },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  const plan = await api.http.call('POST', '/v1/plans', {
    code: 'ent-pro',
    name: 'Pro',
    currency: 'USD',
    billing_interval: 'PT2H',
    flat_fee: '0',
    charges: [{ metric_code: 'ent_tokens', price: { model: 'per_unit', unitPrice: '0.01' } }],
    features: [
      { code: 'sso', kind: 'boolean' },
      { code: 'api_calls', kind: 'metered', metric_code: 'ent_calls', limit: '3' },
      { code: 'tokens', kind: 'metered', metric_code: 'ent_tokens', limit: '100.5' },
      { code: 'ai_credits', kind: 'wallet' },
    ],
  });
  expect(plan.status).toBe(201);
  expect(plan.json.features[1]).toEqual({ code: 'api_calls', kind: 'metered', metric_code: 'ent_calls', limit: '3', enforcement: 'hard' });
  const planRow = await db('plans').where({ code: 'ent-pro' }).first();
  for (const externalId of ['ent-acme', 'ent-globex']) {
    const customer = await insertCustomer(db, { external_id: externalId });
    const { row } = await insertSubscription(db, customer, planRow, periodStart);
    await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
    if (externalId === 'ent-acme') acme = customer;
    else globex = customer;
  }
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

const call = (id: string, customer = 'ent-acme') => ({ id, customer, type: 'ent.call', timestamp: inPeriod(), properties: {} });

async function entitlement(feature: string, key: TestApiKey = app, customer: CustomerRow = acme) {
  const response = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements/${feature}`, undefined, key.headers);
  expect(response.status).toBe(200);
  return response.json;
}

test('a plan with a hard limit of 3 calls: the answer and ingestion agree at every step', async () => {
  const sent: ReturnType<typeof call>[] = [];
  for (let step = 0; step < 5; step += 1) {
    const before = await entitlement('api_calls');
    expect(before).toMatchObject({ feature: 'api_calls', kind: 'metered', usage: String(Math.min(step, 3)), limit: '3', resets_at: periodEnd.toISOString() });
    sent.push(call(`limit-${step}`));
    const posted = await api.http.call('POST', '/v1/events', sent[step], app.headers);
    // has_access says whether the next call gets through; ingestion decides the same way.
    if (before.has_access) {
      expect(posted.status).toBe(200);
      expect(posted.json.accepted).toBe(1);
    } else {
      expect(posted.status).toBe(422);
      expect(posted.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'entitlement_limit_reached' })]);
    }
    expect(before.has_access).toBe(step < 3);
  }
  expect(await entitlement('api_calls')).toMatchObject({ usage: '3', has_access: false });
  // A resend of an event already counted (the very same event) is a duplicate, not a refusal; it counts nothing.
  const resent = await api.http.call('POST', '/v1/events', sent[0], app.headers);
  expect(resent.json).toMatchObject({ accepted: 0, duplicates: 1, rejected: 0 });
  expect(Number((await db('usage_events').where({ customer_id: acme.id, event_type: 'ent.call' }).count<{ count: string }[]>('* as count'))[0].count)).toBe(3);
});

test('a sum limit refuses the event that would pass it and keeps a smaller one of the same batch', async () => {
  const tokens = (id: string, value: string) => ({ id, customer: 'ent-acme', type: 'ent.llm', timestamp: inPeriod(), properties: { tokens: value } });
  const posted = await api.http.call('POST', '/v1/events', { events: [tokens('t1', '60.25'), tokens('t2', '40.50'), tokens('t3', '40.25')] }, app.headers);
  expect(posted.status).toBe(200);
  expect(posted.json).toMatchObject({ accepted: 2, rejected: 1, errors: [expect.objectContaining({ index: 1, code: 'entitlement_limit_reached' })] });
  expect(await entitlement('tokens')).toMatchObject({ usage: '100.50', limit: '100.5', has_access: false });
  // The preview rates the very same quantity: 100.50 tokens at 0.01 = 1.005, 1.01 rounded half-up.
  const subscription = await db('subscriptions').where({ customer_id: acme.id }).first();
  const preview = await api.http.call('GET', `/v1/subscriptions/${subscription.id}/usage`, undefined, app.headers);
  expect(preview.json.usage).toEqual([{ metric_code: 'ent_tokens', quantity: '100.50', event_count: 2, amount: '1.01' }]);
});

test('two requests racing for the last unit: one gets it', async () => {
  const results = await Promise.all([1, 2, 3, 4].map((n) => api.http.call('POST', '/v1/events', call(`race-${n}`, 'ent-globex'), app.headers)));
  // globex starts at 0 of 3: three of the four get through, whichever they are.
  expect(results.filter((result) => result.status === 200).length).toBe(3);
  expect(await entitlement('api_calls', app, globex)).toMatchObject({ usage: '3', has_access: false });
});

test('boolean, wallet and undeclared features; the list answers every declared one', async () => {
  expect(await entitlement('sso')).toMatchObject({ kind: 'boolean', has_access: true });
  expect(await entitlement('ai_credits')).toMatchObject({ kind: 'wallet', has_access: false, balance: null });
  expect(await entitlement('nope')).toMatchObject({ kind: null, has_access: false });
  const granted = await api.http.call('POST', `/v1/customers/${acme.id}/wallet/grants`, { amount: '10.00', source: 'promotional' }, finance.headers);
  expect(granted.status).toBe(201);
  // The wallet pays for usage: tokens so far (100.50 at 0.01 = 1.005, rounded 1.01) come off the balance.
  expect(await entitlement('ai_credits')).toMatchObject({ kind: 'wallet', has_access: true, balance: '8.99' });
  const list = await api.http.call('GET', `/v1/customers/${acme.id}/entitlements`, undefined, app.headers);
  expect(list.json.data.map((answer: { feature: string }) => answer.feature).sort()).toEqual(['ai_credits', 'api_calls', 'sso', 'tokens']);
});

test('a wallet feature counts only credit that can pay the plan’s usage: a grant for a metric the plan does not price never will', async () => {
  // ent-pro prices tokens only. A 5.00 grant for calls pays nothing the plan bills (before: has_access true, 5.00).
  const customer = await insertCustomer(db, { external_id: 'ent-scoped' });
  const { row } = await insertSubscription(db, customer, (await db('plans').where({ code: 'ent-pro' }).first())!, periodStart);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
  const grant = (amount: string, metricCodes: string[]) =>
    createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: `scoped-${metricCodes[0]}`, source: 'promotional', amount, priority: 0, effectiveAt: periodStart, metricCodes });
  await grant('5.00', ['ent_calls']);
  expect(await entitlement('ai_credits', app, customer)).toMatchObject({ kind: 'wallet', has_access: false, balance: '0.00' });
  // A 2.00 grant for tokens can: 100 tokens (1.00) pending come off it, 1.00 left.
  await grant('2.00', ['ent_tokens']);
  const posted = await api.http.call('POST', '/v1/events', { id: 'scoped-t1', customer: 'ent-scoped', type: 'ent.llm', timestamp: inPeriod(), properties: { tokens: '100' } }, app.headers);
  expect(posted.json).toMatchObject({ accepted: 1 });
  expect(await entitlement('ai_credits', app, customer)).toMatchObject({ kind: 'wallet', has_access: true, balance: '1.00' });
});

test('a wallet feature keeps the credit another subscription\'s pending usage leaves it: a calls-only grant pays those calls first', async () => {
  // ent-pro prices tokens; the customer's second subscription prices calls at 1.00. A calls-only 5.00 grant (drawn
  // first) and a 5.00 grant for anything; 3 calls pending take 3.00 off the calls-only one. What can pay ent-pro's
  // usage: the 5.00 for anything (before: 10.00 - 3.00 pending - the calls-only grant's whole 5.00 = 2.00).
  const customer = await insertCustomer(db, { external_id: 'ent-two' });
  const callsPlan = await insertPlan(db, { code: 'ent-calls-only', billing_interval: 'PT2H', flat_fee: '0', charges: [{ metricCode: 'ent_calls', price: { model: 'per_unit', unitPrice: '1.00' } }] as never });
  for (const plan of [(await db('plans').where({ code: 'ent-pro' }).first())!, callsPlan]) {
    const { row } = await insertSubscription(db, customer, plan, periodStart);
    await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
  }
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'calls-only', source: 'promotional', amount: '5.00', priority: 0, effectiveAt: periodStart, metricCodes: ['ent_calls'] });
  await createGrant(db, { customerId: customer.id, currency: 'USD', grantKey: 'anything', source: 'promotional', amount: '5.00', priority: 1, effectiveAt: periodStart });
  const posted = await api.http.call('POST', '/v1/events', { events: [0, 1, 2].map((n) => call(`two-${n}`, 'ent-two')) }, app.headers);
  expect(posted.json).toMatchObject({ accepted: 3 });
  expect(await entitlement('ai_credits', app, customer)).toMatchObject({ kind: 'wallet', has_access: true, balance: '5.00' });
});

test("a customer usage token reads its own customer's entitlements only", async () => {
  const token = await createTestApiKey(db, 'customer_usage', { customerId: acme.id });
  expect(await entitlement('api_calls', token)).toMatchObject({ usage: '3' });
  const other = await api.http.call('GET', `/v1/customers/${globex.id}/entitlements/api_calls`, undefined, token.headers);
  expect(other.status).toBe(404);
});

test('a hard limit on a metric that cannot carry one is refused when the plan is created', async () => {
  await api.http.call('POST', '/v1/metrics', { code: 'ent_peak', name: 'Peak', event_type: 'ent.peak', aggregation: 'max', property: 'v' });
  const refused = await api.http.call('POST', '/v1/plans', {
    code: 'ent-bad',
    name: 'Bad',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    features: [{ code: 'peak', kind: 'metered', metric_code: 'ent_peak', limit: '5' }],
  });
  expect(refused.status).toBe(422);
  expect(await db('plans').where({ code: 'ent-bad' }).first()).toBeUndefined();
});

test('the wallet view: balance, usage not yet invoiced, grants with expiries, ledger, run-out; an accepted event shows at once', async () => {
  const token = await createTestApiKey(db, 'customer_usage', { customerId: acme.id });
  const read = async () => {
    const response = await api.http.call('GET', `/v1/customers/${acme.id}/wallet`, undefined, token.headers);
    expect(response.status).toBe(200);
    return response.json;
  };
  const before = await read();
  expect(before).toMatchObject({
    currency: 'USD',
    balance: '10.00',
    pending_usage: '1.01',
    available: '8.99',
    grants: [{ source: 'promotional', amount: '10.00', remaining: '10.00', expires_at: null }],
    ledger: [{ kind: 'grant', amount: '10.00', balance_after: '10.00' }],
  });
  expect(Date.parse(before.projected_run_out_at)).toBeGreaterThan(Date.now());
  // acme is at its token limit; the real-time check runs on globex (no tokens used yet).
  await api.http.call('POST', `/v1/customers/${globex.id}/wallet/grants`, { amount: '1.00', source: 'goodwill' }, finance.headers);
  const globexWallet = async () => (await api.http.call('GET', `/v1/customers/${globex.id}/wallet`, undefined, app.headers)).json;
  expect((await globexWallet()).available).toBe('1.00');
  const posted = await api.http.call('POST', '/v1/events', { id: 'g-tokens-1', customer: 'ent-globex', type: 'ent.llm', timestamp: inPeriod(), properties: { tokens: '50' } }, app.headers);
  expect(posted.json.accepted).toBe(1);
  // Read right after the answer: 50 tokens at 0.01 = 0.50 already off the available balance.
  expect((await globexWallet()).available).toBe('0.50');
  expect((await api.http.call('GET', `/v1/customers/${globex.id}/wallet`, undefined, token.headers)).status).toBe(404);
});

test('real time: once POST /v1/events answers, the entitlement answer and the available balance reflect the event within 1 s', async () => {
  const customer = await insertCustomer(db, { external_id: 'ent-initech' });
  const planRow = await db('plans').where({ code: 'ent-pro' }).first();
  const { row } = await insertSubscription(db, customer, planRow, periodStart);
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd });
  expect((await api.http.call('POST', `/v1/customers/${customer.id}/wallet/grants`, { amount: '2.00', source: 'goodwill' }, finance.headers)).status).toBe(201);
  const available = async () => (await api.http.call('GET', `/v1/customers/${customer.id}/wallet`, undefined, app.headers)).json.available;
  // Read first, so the period's totals exist and the events below reach them through ingestion, not a later seed.
  expect(await entitlement('tokens', app, customer)).toMatchObject({ usage: '0', has_access: true });
  expect(await entitlement('ai_credits', app, customer)).toMatchObject({ balance: '2.00', has_access: true });
  expect(await available()).toBe('2.00');
  for (const [step, tokens] of [['1', '25'], ['2', '12.5']] as const) {
    const posted = await api.http.call('POST', '/v1/events', { id: `rt-${step}`, customer: 'ent-initech', type: 'ent.llm', timestamp: inPeriod(), properties: { tokens } }, app.headers);
    expect(posted.json.accepted).toBe(1);
    const usage = step === '1' ? '25' : '37.5';
    const balance = step === '1' ? '1.75' : '1.62'; // 2.00 - 0.25, then 2.00 - 0.375 (rounded half-up: 0.38)
    const seen = await eventually(
      async () => {
        const [tokensAnswer, walletAnswer, left] = [await entitlement('tokens', app, customer), await entitlement('ai_credits', app, customer), await available()];
        return tokensAnswer.usage === usage && walletAnswer.balance === balance && left === balance && { tokensAnswer, walletAnswer, left };
      },
      () => `usage ${usage} and balance ${balance} after event rt-${step}`,
      { timeoutMs: 1_000, intervalMs: 50 },
    );
    expect(seen.tokensAnswer).toMatchObject({ usage, limit: '100.5' });
  }
});
