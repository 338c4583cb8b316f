/**
 * The catalog refuses, with a 422 problem+json and nothing stored, every price the rating engine could not rate:
 * tiers out of order, overlapping (the same bound twice), an open tier before the last, a bounded last tier (usage
 * above it would fall in a gap no tier prices), a zero or negative package or block size, a percentage rate outside
 * [0, 1], a min fee above the max, and the same inside a dimensional charge's prices and default price. Over real
 * HTTP and Postgres, no Temporal.
 */
import type { Database } from '../../store/database';
import { ApiOnly, serveApiOnly } from '../support/api-only';
import { createTestApiKey } from '../support/api-keys';
import { createTestDatabase } from '../support/database';

let db: Database;
let api: ApiOnly;

beforeAll(async () => {
  db = await createTestDatabase();
  api = await serveApiOnly(db, { headers: (await createTestApiKey(db, 'admin')).headers });
  expect((await api.http.call('POST', '/v1/metrics', { code: 'calls', name: 'Calls', event_type: 'api.call', aggregation: 'sum', property: 'n' })).status).toBe(201);
  expect((await api.http.call('POST', '/v1/metrics', { code: 'tickets', name: 'Tickets', event_type: 'ticket', aggregation: 'count', property: 'value' })).status).toBe(201);
  expect(
    (await api.http.call('POST', '/v1/metrics', { code: 'tokens', name: 'Tokens', event_type: 'llm', aggregation: 'sum', property: 'tokens', group_by: ['model'] })).status,
  ).toBe(201);
});

afterAll(async () => {
  await api.close();
  await db.destroy();
});

const plan = (code: string, charge: Record<string, unknown>) => ({ code, name: code, currency: 'USD', billing_interval: 'P1M', flat_fee: '10.00', charges: [charge] });
const tiered = (model: 'graduated' | 'volume', upTos: (string | null)[], extra: Record<string, unknown> = {}) => ({
  model,
  tiers: upTos.map((upTo) => ({ upTo, unitPrice: '0.10', ...extra })),
});
const onCalls = (price: unknown) => ({ metric_code: 'calls', price });
const dimensional = (dimensions: Record<string, unknown>) => ({ metric_code: 'tokens', dimensions: { unmatched: 'list', ...dimensions } });

test.each([
  ['graduated-out-of-order', onCalls(tiered('graduated', ['500', '100', null])), 'invalid_price'],
  ['volume-out-of-order', onCalls(tiered('volume', ['500', '100', null])), 'invalid_price'],
  ['graduated-overlapping', onCalls(tiered('graduated', ['100', '100', null])), 'invalid_price'],
  ['volume-overlapping-trailing-zero', onCalls(tiered('volume', ['100', '100.0', null])), 'invalid_price'],
  ['graduated-open-tier-first', onCalls(tiered('graduated', [null, '100'])), 'invalid_price'],
  ['volume-bounded-last-tier', onCalls(tiered('volume', ['100', '500'])), 'invalid_price'],
  ['graduated-zero-bound', onCalls(tiered('graduated', ['0', null])), 'invalid_price'],
  ['graduated-bound-as-number', onCalls({ model: 'graduated', tiers: [{ upTo: 100, unitPrice: '0.10' }, { upTo: null, unitPrice: '0.05' }] }), 'validation_failed'],
  ['graduated-zero-block', onCalls(tiered('graduated', ['100', null], { blockSize: '0' })), 'validation_failed'],
  ['package-zero-size', onCalls({ model: 'package', packageSize: '0', packagePrice: '5.00' }), 'invalid_price'],
  ['package-zero-size-decimals', onCalls({ model: 'package', packageSize: '0.000', packagePrice: '5.00' }), 'invalid_price'],
  ['package-negative-size', onCalls({ model: 'package', packageSize: '-10', packagePrice: '5.00' }), 'invalid_price'],
  ['percentage-rate-above-one', { metric_code: 'tickets', price: { model: 'percentage', rate: '1.5' } }, 'invalid_price'],
  ['percentage-min-above-max', { metric_code: 'tickets', price: { model: 'percentage', rate: '0.02', minFee: '5', maxFee: '1' } }, 'invalid_price'],
  ['dimension-tiers-out-of-order', dimensional({ prices: [{ match: { model: 'large' }, price: tiered('graduated', ['500', '100', null]) }] }), 'invalid_price'],
  // (The first dimensional price stands for the charge and is checked as its price: invalid_price. A later one: invalid_dimensions.)
  ['dimension-second-price-overlapping', dimensional({ prices: [{ match: { model: 'small' }, price: { model: 'per_unit', unitPrice: '0.01' } }, { match: { model: 'large' }, price: tiered('volume', ['100', '100', null]) }] }), 'invalid_dimensions'],
  ['dimension-default-zero-package', dimensional({ prices: [], default_price: { model: 'package', packageSize: '0', packagePrice: '1.00' } }), 'invalid_price'],
])('a plan %s is refused with 422 problem+json and nothing is stored', async (code, charge, problem) => {
  const refused = await api.http.call('POST', '/v1/plans', plan(code, charge));
  expect([refused.status, refused.type.split(';')[0], refused.json.code]).toEqual([422, 'application/problem+json', problem]);
  expect(await db('plans').where({ code })).toEqual([]);
});

test('the same prices put right are published (the refusals above are about the flaw, not the shape)', async () => {
  for (const [code, charge] of [
    ['graduated-ok', onCalls(tiered('graduated', ['100', '500', null], { flatFee: '1.00' }))],
    ['package-fractional-size-ok', onCalls({ model: 'package', packageSize: '2.5', packagePrice: '1.00' })],
    ['dimension-ok', dimensional({ prices: [{ match: { model: 'large' }, price: tiered('volume', ['100', null]) }], default_price: { model: 'per_unit', unitPrice: '0.01' } })],
  ] as const) {
    expect([code, (await api.http.call('POST', '/v1/plans', plan(code, charge))).status]).toEqual([code, 201]);
  }
});
