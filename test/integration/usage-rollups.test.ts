/**
 * Running totals (store/rollups.ts) against the raw aggregate (store/usage.ts) over random event sets: the rollup
 * answer must equal aggregating the raw events, whatever the batches, duplicates (resent event ids), events
 * arriving after the window was first read (late ones, with earlier timestamps), negative corrections, values that
 * do not read as numbers, events outside the window and events another metric's filter excludes.
 */
import fc from 'fast-check';
import { Decimal } from 'decimal.js';
import type { Database } from '../../store/database';
import type { MetricRow } from '../../store/catalog';
import { aggregateMetric, insertUsageEvents, NewUsageEvent } from '../../store/usage';
import { rollupUsage } from '../../store/rollups';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let metrics: MetricRow[];
const FROM = new Date('2027-03-01T10:00:00.250Z');
const TO = new Date('2027-03-02T10:00:00.250Z');

beforeAll(async () => {
  db = await createTestDatabase();
  metrics = await db<MetricRow>('billable_metrics')
    .insert([
      { code: 'r_calls', name: 'Calls', event_type: 'r.call', aggregation: 'count', property: null },
      { code: 'r_paid_calls', name: 'Calls with an amount', event_type: 'r.call', aggregation: 'count', property: 'amount' },
      { code: 'r_tokens', name: 'Tokens', event_type: 'r.call', aggregation: 'sum', property: 'tokens' },
      { code: 'r_big_tokens', name: 'Tokens on big', event_type: 'r.call', aggregation: 'sum', property: 'tokens', filters: { model: 'big' } },
      { code: 'r_peak', name: 'Peak', event_type: 'r.call', aggregation: 'max', property: 'tokens' },
      { code: 'r_users', name: 'Users', event_type: 'r.call', aggregation: 'unique_count', property: 'user' },
      { code: 'r_seats', name: 'Seats', event_type: 'r.seat', aggregation: 'latest', property: 'seats' },
      { code: 'r_credits', name: 'Corrections', event_type: 'r.seat', aggregation: 'sum', property: 'delta', allow_negative: true },
    ])
    .returning('*');
});

afterAll(async () => {
  await db?.destroy();
});

const numeric = fc.oneof(
  fc.integer({ min: 0, max: 5_000 }),
  fc.integer({ min: 0, max: 99_999 }).map((cents) => (cents / 100).toFixed(2)),
  fc.constantFrom('0.5', '0.50', '007', '1.000000000001'),
);
const anyValue = fc.oneof(numeric, numeric.map((value) => `-${value}`), fc.constantFrom('abc', '', null), fc.constant(undefined));

/** Offsets in ms from FROM: mostly inside the window, some on its edges and some outside. */
const offset = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: TO.getTime() - FROM.getTime() - 1 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, 0, TO.getTime() - FROM.getTime() - 1, TO.getTime() - FROM.getTime()) },
  { weight: 1, arbitrary: fc.integer({ min: -86_400_000, max: 2 * 86_400_000 }) },
);

const event = fc.record({
  id: fc.integer({ min: 0, max: 40 }), // a small id space: many resends
  type: fc.constantFrom('r.call', 'r.call', 'r.seat', 'r.other'),
  at: offset,
  tokens: anyValue,
  amount: anyValue,
  model: fc.constantFrom('big', 'small', undefined),
  user: fc.oneof(fc.constantFrom('u1', 'u2', 'u3', 'U1', 'u1 '), fc.integer({ min: 0, max: 3 }), fc.constant(undefined)),
  seats: anyValue,
  delta: anyValue,
});

type GeneratedEvent = typeof event extends fc.Arbitrary<infer T> ? T : never;

function toNewEvent(customerId: string, generated: GeneratedEvent): NewUsageEvent {
  const properties: Record<string, unknown> = {};
  for (const key of ['tokens', 'amount', 'model', 'user', 'seats', 'delta'] as const) {
    if (generated[key] !== undefined) properties[key] = generated[key];
  }
  return { customerId, eventId: `e${generated.id}`, eventType: generated.type, occurredAt: new Date(FROM.getTime() + generated.at), properties };
}

async function rawUsage(customerId: string): Promise<Map<string, { quantity: string; eventCount: number }>> {
  const entries = await Promise.all(
    metrics.map(async (metric) => [metric.code, await aggregateMetric(db, metric, { kind: 'unclaimed', customerId, from: FROM, to: TO }, false)] as const),
  );
  return new Map(entries);
}

test('rollup totals equal the raw aggregate over random batches, resends, late events and negatives', async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(event, { minLength: 0, maxLength: 12 }), { minLength: 1, maxLength: 6 }),
      fc.nat(6),
      async (batches, seedBefore) => {
        run += 1;
        const customer = await insertCustomer(db, { external_id: `rollup-${run}-${Math.random()}` });
        for (const [index, batch] of batches.entries()) {
          // The window is first read (and seeded) somewhere among the batches: before it, events are folded in
          // by the seed's scan; after it, by the insert statement itself.
          if (index === seedBefore) await rollupUsage(db, { customerId: customer.id, from: FROM, to: TO }, metrics);
          await insertUsageEvents(db, batch.map((generated) => toNewEvent(customer.id, generated)));
        }
        const rolled = (await rollupUsage(db, { customerId: customer.id, from: FROM, to: TO }, metrics))!;
        const raw = await rawUsage(customer.id);
        for (const metric of metrics) {
          const expected = raw.get(metric.code)!;
          const actual = rolled.get(metric.code)!;
          // Equal as numbers (a max over equal values of different scales may print either scale).
          expect({ metric: metric.code, quantity: new Decimal(actual.quantity).toString(), eventCount: actual.eventCount }).toEqual({
            metric: metric.code,
            quantity: new Decimal(expected.quantity).toString(),
            eventCount: expected.eventCount,
          });
        }
      },
    ),
    { numRuns: 60 },
  );
});

test('a window that a closed usage period overlaps is not answered from totals (claimed events are not open)', async () => {
  const customer = await insertCustomer(db, { external_id: 'rollup-closed' });
  expect(await rollupUsage(db, { customerId: customer.id, from: FROM, to: TO }, metrics)).toBeDefined();
  const [plan] = await db('plans').insert({ code: 'rollup-plan', version: 1, name: 'p', currency: 'USD', billing_interval: 'P1M', flat_fee: '0' }).returning('id');
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: plan.id, status: 'active', workflow_id: 'direct:rollup', start_at: FROM })
    .returning('id');
  await db('usage_period_closures').insert({
    subscription_id: subscription.id,
    customer_id: customer.id,
    period_start: FROM,
    period_end: new Date(FROM.getTime() + 3_600_000),
    totals: {},
    event_count: 0,
  });
  expect(await rollupUsage(db, { customerId: customer.id, from: FROM, to: TO }, metrics)).toBeUndefined();
});

test('totals reflect an accepted event as soon as its insert commits', async () => {
  const customer = await insertCustomer(db, { external_id: 'rollup-realtime' });
  const tokens = metrics.find((metric) => metric.code === 'r_tokens')!;
  const window = { customerId: customer.id, from: FROM, to: TO };
  expect((await rollupUsage(db, window, [tokens]))!.get('r_tokens')).toEqual({ quantity: '0', eventCount: 0 });
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'rt-1', eventType: 'r.call', occurredAt: new Date(FROM.getTime() + 5), properties: { tokens: '12.50' } }]);
  expect((await rollupUsage(db, window, [tokens]))!.get('r_tokens')).toEqual({ quantity: '12.50', eventCount: 1 });
  // A resend changes nothing.
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'rt-1', eventType: 'r.call', occurredAt: new Date(FROM.getTime() + 5), properties: { tokens: '99' } }]);
  expect((await rollupUsage(db, window, [tokens]))!.get('r_tokens')).toEqual({ quantity: '12.50', eventCount: 1 });
});
