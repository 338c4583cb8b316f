/**
 * A reversal is judged by the dispute window of the plan that bills its outcome (docs/pricing.md "Reversible
 * outcomes"): the plan its usage close billed it at, else the plan of the subscription pricing its type at its time.
 * Before, the customer's newest live subscription's plan judged every reversal: with tickets sold at 5.00 under a
 * plan granting 14 days and calls on a newer plan granting none, a ticket's reversal was refused (5.00 owed back,
 * not credited); the other way round, a ticket sold under a plan without reversals was taken back (5.00 unbilled).
 */
import type { Database } from '../../store/database';
import { closeUsage } from '../../store/usage';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey, TestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let app: TestApiKey;
// Two-hour periods around now; the API judges timestamps by the wall clock.
const periodStart = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 + 400);
const periodEnd = new Date(periodStart.getTime() + 7_200_000);
const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  app = await createTestApiKey(db, 'app');
  for (const metric of [
    { code: 'dw_tickets', name: 'Tickets', event_type: 'dw.ticket', aggregation: 'count' },
    { code: 'dw_calls', name: 'Calls', event_type: 'dw.call', aggregation: 'count' },
  ]) {
    expect((await api.http.call('POST', '/v1/metrics', metric)).status).toBe(201);
  }
  for (const [code, metric, window] of [
    ['dw-tickets-14d', 'dw_tickets', 'P14D'],
    ['dw-tickets-none', 'dw_tickets', null],
    ['dw-calls-14d', 'dw_calls', 'P14D'],
    ['dw-calls-none', 'dw_calls', null],
  ] as const) {
    const plan = { code, name: code, currency: 'USD', billing_interval: 'PT2H', flat_fee: '0', ...(window ? { dispute_window: window } : {}), charges: [{ metric_code: metric, price: { model: 'per_unit', unitPrice: '5.00' } }] };
    expect((await api.http.call('POST', '/v1/plans', plan)).status).toBe(201);
  }
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

/** A customer with a subscription per plan code, in this order (the last is the newest). */
async function customerWith(externalId: string, planCodes: readonly string[]) {
  const customer = await insertCustomer(db, { external_id: externalId });
  const subscriptions = [];
  for (const [n, code] of planCodes.entries()) {
    const plan = await db('plans').where({ code }).first();
    const { row } = await insertSubscription(db, customer, plan, periodStart);
    await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: periodStart, current_period_end: periodEnd, created_at: new Date(Date.now() + n * 1000) });
    subscriptions.push({ ...row, plan });
  }
  return { customer, subscriptions };
}

const event = (customer: string, id: string, type: string, at: string, reverses?: string) => ({ id, customer, type, timestamp: at, properties: {}, ...(reverses ? { reverses } : {}) });

test('a ticket sold under a plan granting 14 days is reversible, whatever a newer subscription’s plan grants', async () => {
  await customerWith('dw-a', ['dw-tickets-14d', 'dw-calls-none']);
  expect((await api.http.call('POST', '/v1/events', event('dw-a', 'a-ticket', 'dw.ticket', minutesAgo(30)), app.headers)).status).toBe(200);
  const reversal = await api.http.call('POST', '/v1/events', event('dw-a', 'a-reopen', 'dw.ticket', minutesAgo(10), 'a-ticket'), app.headers);
  expect(reversal.status).toBe(200);
  expect(reversal.json).toMatchObject({ accepted: 1, rejected: 0 });
});

test('a ticket sold under a plan without reversals stays billed, whatever a newer subscription’s plan grants', async () => {
  await customerWith('dw-b', ['dw-tickets-none', 'dw-calls-14d']);
  expect((await api.http.call('POST', '/v1/events', event('dw-b', 'b-ticket', 'dw.ticket', minutesAgo(30)), app.headers)).status).toBe(200);
  const reversal = await api.http.call('POST', '/v1/events', event('dw-b', 'b-reopen', 'dw.ticket', minutesAgo(10), 'b-ticket'), app.headers);
  expect(reversal.status).toBe(422);
  expect(reversal.json.errors).toEqual([expect.objectContaining({ index: 0, code: 'dispute_window_closed' })]);
  expect(await db('usage_events').where({ event_id: 'b-ticket' }).first('reversed_by_event_id')).toEqual({ reversed_by_event_id: null });
  // A call, sold under the plan granting 14 days, is reversible.
  expect((await api.http.call('POST', '/v1/events', event('dw-b', 'b-call', 'dw.call', minutesAgo(30)), app.headers)).status).toBe(200);
  expect((await api.http.call('POST', '/v1/events', event('dw-b', 'b-call-back', 'dw.call', minutesAgo(10), 'b-call'), app.headers)).status).toBe(200);
});

test('an invoiced ticket of an ended subscription keeps its plan’s window after the customer moved to a plan without one', async () => {
  const { customer, subscriptions } = await customerWith('dw-c', ['dw-tickets-14d']);
  const [tickets] = subscriptions;
  expect((await api.http.call('POST', '/v1/events', event('dw-c', 'c-ticket', 'dw.ticket', minutesAgo(30)), app.headers)).status).toBe(200);
  // Its usage closed (billed at 5.00 under dw-tickets-14d), the subscription ended; a new one prices calls, no reversals.
  await db.transaction((trx) => closeUsage(trx, { subscriptionId: tickets.id, customerId: customer.id, periodStart, periodEnd: new Date(Date.now() - 20 * 60_000), planId: tickets.plan.id, charges: tickets.plan.charges as never }));
  expect((await db('usage_events').where({ event_id: 'c-ticket' }).first('period_close_id')).period_close_id).not.toBeNull();
  await db('subscriptions').where({ id: tickets.id }).update({ status: 'canceled', canceled_at: new Date(Date.now() - 20 * 60_000) });
  const calls = await db('plans').where({ code: 'dw-calls-none' }).first();
  const { row } = await insertSubscription(db, customer, calls, new Date(Date.now() - 20 * 60_000));
  await db('subscriptions').where({ id: row.id }).update({ status: 'active', current_period_start: new Date(Date.now() - 20 * 60_000), current_period_end: periodEnd });
  const reversal = await api.http.call('POST', '/v1/events', event('dw-c', 'c-reopen', 'dw.ticket', minutesAgo(10), 'c-ticket'), app.headers);
  expect(reversal.status).toBe(200);
  expect(await db('usage_events').where({ event_id: 'c-ticket' }).first('reversed_by_event_id')).toEqual({ reversed_by_event_id: 'c-reopen' });
});
