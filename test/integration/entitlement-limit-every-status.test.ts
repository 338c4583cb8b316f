/**
 * Which subscriptions' plans grant their features (the entitlement answer) and hold their hard limits (ingestion),
 * status by status, through the API against the rows the workflow writes (store/entitlements.ts `HOLDS_LIMITS_SQL`,
 * `grantsFeaturesSql`). Both read only `active`, `trialing` and `past_due` before: a subscription asked to cancel at
 * its period's end (or offered a retention discount, or paused under the `bill` policy) answered "no access" while
 * ingestion accepted and billed its usage past the limit; a suspended one billed the calls stamped before its block
 * past the limit; a cancellation now, in its grace window, still answered "access".
 *
 *   each row: period [now - 1 h, now + 1 h), limit 3 calls;  5 calls stamped `at`, then the answer for `calls`
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertSubscription } from '../support/fixtures';

let db: Database;
let api: ApiOnly;
let plan: Record<string, unknown>;
const now = new Date(Math.floor(Date.now() / 60_000) * 60_000);
const minutes = (n: number) => new Date(now.getTime() + n * 60_000);

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers, now: () => now });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'every_calls', name: 'Calls', event_type: 'every.call', aggregation: 'count' })).status).toBe(201);
  const created = await api.http.call('POST', '/v1/plans', {
    code: 'every-limited',
    name: 'Limited',
    currency: 'USD',
    billing_interval: 'P1M',
    flat_fee: '0',
    charges: [{ metric_code: 'every_calls', price: { model: 'per_unit', unitPrice: '1.00' } }],
    features: [{ code: 'calls', kind: 'metered', metric_code: 'every_calls', limit: '3' }],
  });
  expect(created.status).toBe(201);
  plan = await db('plans').where({ code: 'every-limited' }).first();
});

afterAll(async () => {
  await api?.close();
  await db?.destroy();
});

interface RowState {
  readonly status: string;
  readonly usage_blocked?: boolean;
  readonly usage_blocked_since?: Date;
  readonly canceled_at?: Date;
  readonly usage_ends_at?: Date;
}

/** A customer whose one subscription stands as `row` says; 5 calls stamped `at`; the answers after them. */
async function judged(name: string, row: RowState, at: Date) {
  const customer = await insertCustomer(db, { external_id: `every-${name}` });
  const { row: subscription } = await insertSubscription(db, customer, plan as never, minutes(-60));
  await db('subscriptions').where({ id: subscription.id }).update({ current_period_start: minutes(-60), current_period_end: minutes(60), ...row });
  const calls = [1, 2, 3, 4, 5].map((n) => ({ id: `${name}-${n}`, customer: `every-${name}`, type: 'every.call', timestamp: at.toISOString(), properties: {} }));
  const sent = await api.http.call('POST', '/v1/events', { events: calls });
  const one = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements/calls`);
  const all = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements`);
  const listed = (all.json.data as { feature: string; has_access: boolean; usage: string }[]).find((entry) => entry.feature === 'calls');
  return {
    // A batch refused whole is a problem document (batch_rejected) listing each event's code.
    accepted: sent.json.accepted ?? 0,
    refused: [...new Set((sent.json.errors as { code: string }[]).map((error) => error.code))],
    answer: { kind: one.json.kind, has_access: one.json.has_access, usage: one.json.usage },
    listed: listed ? { has_access: listed.has_access, usage: listed.usage } : null,
  };
}

const heldAndGranted = { accepted: 3, refused: ['entitlement_limit_reached'], answer: { kind: 'metered', has_access: false, usage: '3' }, listed: { has_access: false, usage: '3' } };
const heldNotGranted = { accepted: 3, refused: ['entitlement_limit_reached'], answer: { kind: null, has_access: false, usage: null }, listed: null };

test.each([
  // In service: the answer grants, the limit holds.
  ['active', { status: 'active' }, heldAndGranted],
  ['trialing', { status: 'trialing' }, heldAndGranted],
  ['past_due', { status: 'past_due' }, heldAndGranted],
  // In service until the period's end, whose closing invoice bills the calls.
  ['pending_cancellation', { status: 'pending_cancellation' }, heldAndGranted],
  // Asked to cancel, a retention offer waiting: the period goes on and bills its calls.
  ['retention_offered', { status: 'retention_offered' }, heldAndGranted],
  // Paused under the `bill` policy (no block): the calls are accepted and the period's invoice bills them.
  ['paused, billing usage', { status: 'paused' }, heldAndGranted],
  // needs_attention over a pending cancellation (the row keeps its standing: usage end written, not canceled).
  ['needs_attention over pending_cancellation', { status: 'needs_attention', usage_ends_at: minutes(60) }, heldAndGranted],
  ['needs_attention over active', { status: 'needs_attention' }, heldAndGranted],
])('%s: the answer grants the features and the limit holds', async (name, row, expected) => {
  expect(await judged(name.replace(/\W+/g, '-'), row, minutes(-1))).toEqual(expected);
});

test.each([
  // Blocked since 30 minutes ago: the calls stamped before the block are billed by the period, held to its limit.
  ['suspended', { status: 'suspended', usage_blocked: true, usage_blocked_since: minutes(-30) }],
  ['paused, refusing usage', { status: 'paused', usage_blocked: true, usage_blocked_since: minutes(-30) }],
  ['needs_attention over suspended', { status: 'needs_attention', usage_blocked: true, usage_blocked_since: minutes(-30) }],
  // Canceled now 30 minutes ago, its closing invoice waiting out the grace window: late calls of before the end are
  // still billed by it, held to the limit; the service has ended.
  ['canceled now, in the grace window', { status: 'active', usage_ends_at: minutes(-30) }],
  ['pending_cancellation past its end, in the grace window', { status: 'pending_cancellation', usage_ends_at: minutes(-30) }],
])('%s: the limit holds for the calls it bills; the answer grants nothing', async (name, row) => {
  expect(await judged(name.replace(/\W+/g, '-'), row, minutes(-45))).toEqual(heldNotGranted);
});

test('blocked: the calls stamped in the block are refused as blocked, not counted', async () => {
  const result = await judged('suspended-in-block', { status: 'suspended', usage_blocked: true, usage_blocked_since: minutes(-30) }, minutes(-1));
  expect(result).toEqual({ accepted: 0, refused: ['usage_blocked'], answer: { kind: null, has_access: false, usage: null }, listed: null });
});

test.each([
  // Not started yet (a started one holds its limits before its first period is stored: entitlement-limit-before-first-period).
  ['scheduled, not started', { status: 'scheduled', start_at: minutes(30) }],
  ['canceled', { status: 'canceled', canceled_at: minutes(-30), usage_ends_at: minutes(-30) }],
  ['needs_attention over canceled', { status: 'needs_attention', canceled_at: minutes(-30), usage_ends_at: minutes(-30) }],
])('%s: no features', async (name, row) => {
  const customer = await insertCustomer(db, { external_id: `every-none-${name.replace(/\W+/g, '-')}` });
  const { row: subscription } = await insertSubscription(db, customer, plan as never, minutes(-60));
  await db('subscriptions').where({ id: subscription.id }).update({ current_period_start: minutes(-60), current_period_end: minutes(60), ...row });
  const one = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements/calls`);
  const all = await api.http.call('GET', `/v1/customers/${customer.id}/entitlements`);
  expect({ kind: one.json.kind, has_access: one.json.has_access, listed: all.json.data }).toEqual({ kind: null, has_access: false, listed: [] });
});
