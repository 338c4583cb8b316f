/**
 * Running totals (store/rollups.ts) against the raw aggregate (store/usage.ts) over random event sets: the rollup
 * answer must equal aggregating the raw events, whatever the batches, duplicates (resent event ids), events
 * arriving after the window was first read (late ones, with earlier timestamps), negative corrections, values that
 * do not read as numbers, events outside the window and events another metric's filter excludes. Also per
 * combination of a grouped metric (its groups equal store/dimension-usage.ts over the raw events), for a later window
 * read at another time than the first (a window seeded at one time, the next one at another), and after a closed
 * usage period claimed part of the first window's events (claimed events are not open usage).
 */
import fc from 'fast-check';
import { Decimal } from 'decimal.js';
import type { Database } from '../../store/database';
import type { MetricRow } from '../../store/catalog';
import { aggregateMetric, closeUsage, insertUsageEvents, NewUsageEvent } from '../../store/usage';
import { aggregateMetricGroups } from '../../store/dimension-usage';
import { rollupUsage, RollupWindow } from '../../store/rollups';
import type { UsageGroup } from '../../domain/dimensions';
import { createSpendingActivities } from '../../activities/spending';
import { createTestDatabase } from '../support/database';
import { insertCustomer } from '../support/fixtures';

let db: Database;
let metrics: MetricRow[];
const FROM = new Date('2027-03-01T10:00:00.250Z');
const TO = new Date('2027-03-02T10:00:00.250Z');
const LATER_TO = new Date('2027-03-03T10:00:00.250Z');
let planId: string;

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
      { code: 'r_tokens_by_model', name: 'Tokens by model and user', event_type: 'r.call', aggregation: 'sum', property: 'tokens', group_by: JSON.stringify(['model', 'user']) as never },
      { code: 'r_calls_by_model', name: 'Calls by model', event_type: 'r.call', aggregation: 'count', property: null, group_by: JSON.stringify(['model']) as never },
      { code: 'r_users_by_model', name: 'Users by model', event_type: 'r.call', aggregation: 'unique_count', property: 'user', group_by: JSON.stringify(['model']) as never },
      { code: 'r_peak_by_user', name: 'Peak by user', event_type: 'r.call', aggregation: 'max', property: 'tokens', group_by: JSON.stringify(['user']) as never },
      { code: 'r_seats_by_model', name: 'Seats by model', event_type: 'r.seat', aggregation: 'latest', property: 'seats', group_by: JSON.stringify(['model']) as never },
    ])
    .returning('*');
  const charges = metrics.map((metric) => ({ metricCode: metric.code, price: { model: 'per_unit', unitPrice: '1' } }));
  [{ id: planId }] = await db('plans').insert({ code: 'rollup-close', version: 1, name: 'p', currency: 'USD', billing_interval: 'P1M', flat_fee: '0', charges: JSON.stringify(charges) }).returning('id');
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
  { weight: 2, arbitrary: fc.integer({ min: TO.getTime() - FROM.getTime(), max: LATER_TO.getTime() - FROM.getTime() - 1 }) }, // the later window
);

const event = fc.record({
  id: fc.integer({ min: 0, max: 40 }), // a small id space: many resends
  type: fc.constantFrom('r.call', 'r.call', 'r.seat', 'r.other'),
  at: offset,
  tokens: anyValue,
  amount: anyValue,
  model: fc.constantFrom('big', 'small', undefined, null),
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

type Usage = { quantity: string; eventCount: number; groups?: UsageGroup[] };

async function rawUsage(window: RollupWindow): Promise<Map<string, Usage>> {
  const scope = { kind: 'unclaimed' as const, customerId: window.customerId, from: window.from, to: window.to };
  const entries = await Promise.all(
    metrics.map(async (metric) => {
      const usage: Usage = await aggregateMetric(db, metric, scope, false);
      if (metric.group_by.length > 0) usage.groups = await aggregateMetricGroups(db, metric, scope, false);
      return [metric.code, usage] as const;
    }),
  );
  return new Map(entries);
}

/** Equal as numbers (a max over equal values of different scales may print either scale); groups in any order. */
function comparable(code: string, usage: Usage) {
  const number = (text: string) => new Decimal(text).toString();
  return {
    metric: code,
    quantity: number(usage.quantity),
    eventCount: usage.eventCount,
    groups: usage.groups
      ?.map((group) => ({ dimensions: JSON.stringify(Object.entries(group.dimensions).sort()), quantity: number(group.quantity), eventCount: group.eventCount }))
      .sort((a, b) => a.dimensions.localeCompare(b.dimensions)),
  };
}

async function expectTotalsEqualRaw(window: RollupWindow): Promise<void> {
  const rolled = await rollupUsage(db, window, metrics);
  const raw = await rawUsage(window);
  for (const metric of metrics) expect(comparable(metric.code, rolled.get(metric.code)!)).toEqual(comparable(metric.code, raw.get(metric.code)!));
}

test('rollup totals equal the raw aggregate over random batches, resends, late events, negatives, combinations, later windows and closes', async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(event, { minLength: 0, maxLength: 12 }), { minLength: 1, maxLength: 6 }),
      fc.nat(6),
      fc.nat(6),
      fc.option(fc.nat(6)),
      async (batches, seedBefore, seedLaterBefore, closeBefore) => {
        run += 1;
        const customer = await insertCustomer(db, { external_id: `rollup-${run}-${Math.random()}` });
        const window = { customerId: customer.id, from: FROM, to: TO };
        const later = { customerId: customer.id, from: TO, to: LATER_TO };
        for (const [index, batch] of batches.entries()) {
          // Each window is first read (and seeded) somewhere among the batches, at its own time: before it, events
          // are folded in by the seed's scan; after it, by the insert statement itself.
          if (index === seedBefore) await rollupUsage(db, window, metrics);
          if (index === seedLaterBefore) await rollupUsage(db, later, metrics);
          // A usage period over the first half of the window closes: it claims its events (later ones there are late).
          if (index === closeBefore) await closeFirstHalf(customer.id);
          await insertUsageEvents(db, batch.map((generated) => toNewEvent(customer.id, generated)));
        }
        await expectTotalsEqualRaw(window);
        await expectTotalsEqualRaw(later);
      },
    ),
    { numRuns: 60 },
  );
});

async function closeFirstHalf(customerId: string): Promise<void> {
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customerId, plan_id: planId, status: 'active', workflow_id: `direct:${customerId}`, start_at: FROM })
    .returning('id');
  const charges = metrics.map((metric) => ({ metricCode: metric.code, price: { model: 'per_unit' as const, unitPrice: '1' } }));
  await db.transaction((trx) =>
    closeUsage(trx, { subscriptionId: subscription.id, customerId, periodStart: FROM, periodEnd: new Date((FROM.getTime() + TO.getTime()) / 2), planId, charges }),
  );
}

test('a closed usage period claiming part of a window: its events leave the totals, late ones after it count', async () => {
  const customer = await insertCustomer(db, { external_id: 'rollup-closed' });
  const window = { customerId: customer.id, from: FROM, to: TO };
  const call = (id: string, hours: number) => ({ customerId: customer.id, eventId: id, eventType: 'r.call', occurredAt: new Date(FROM.getTime() + hours * 3_600_000), properties: { tokens: '10', model: 'big' } });
  await insertUsageEvents(db, [call('c1', 1), call('c2', 20)]);
  expect((await rollupUsage(db, window, metrics)).get('r_tokens')).toMatchObject({ quantity: '20', eventCount: 2 });
  await closeFirstHalf(customer.id); // claims c1 (hour 1 of 24)
  await insertUsageEvents(db, [call('c3', 2)]); // late: in the closed half, unclaimed
  expect((await rollupUsage(db, window, metrics)).get('r_tokens')).toMatchObject({ quantity: '20', eventCount: 2 });
  expect((await rollupUsage(db, window, metrics)).get('r_tokens_by_model')!.groups).toEqual([{ dimensions: { model: 'big' }, quantity: '20', eventCount: 2 }]);
  await expectTotalsEqualRaw(window);
});

test('totals reflect an accepted event as soon as its insert commits', async () => {
  const customer = await insertCustomer(db, { external_id: 'rollup-realtime' });
  const tokens = metrics.find((metric) => metric.code === 'r_tokens')!;
  const window = { customerId: customer.id, from: FROM, to: TO };
  expect((await rollupUsage(db, window, [tokens])).get('r_tokens')).toMatchObject({ quantity: '0', eventCount: 0 });
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'rt-1', eventType: 'r.call', occurredAt: new Date(FROM.getTime() + 5), properties: { tokens: '12.50' } }]);
  expect((await rollupUsage(db, window, [tokens])).get('r_tokens')).toMatchObject({ quantity: '12.50', eventCount: 1 });
  // A resend changes nothing.
  await insertUsageEvents(db, [{ customerId: customer.id, eventId: 'rt-1', eventType: 'r.call', occurredAt: new Date(FROM.getTime() + 5), properties: { tokens: '99' } }]);
  expect((await rollupUsage(db, window, [tokens])).get('r_tokens')).toMatchObject({ quantity: '12.50', eventCount: 1 });
});

test('spending checks at different instants read one window, the period, not a new set of totals per "now"', async () => {
  // Before, each check read [period start, now): a new window per check, seeded by a scan of the period's events,
  // that every later insert then also folded into.
  const customer = await insertCustomer(db, { external_id: 'rollup-spending' });
  const [subscription] = await db('subscriptions')
    .insert({ customer_id: customer.id, plan_id: planId, status: 'active', workflow_id: 'direct:rollup-spending', start_at: FROM, current_period_start: FROM, current_period_end: TO })
    .returning('id');
  const { checkSpending } = createSpendingActivities(db);
  for (const hours of [1, 2, 3]) {
    await insertUsageEvents(db, [{ customerId: customer.id, eventId: `s${hours}`, eventType: 'r.call', occurredAt: new Date(FROM.getTime() + hours * 3_600_000 - 60_000), properties: { tokens: '5' } }]);
    const at = new Date(FROM.getTime() + hours * 3_600_000).toISOString();
    const result = await checkSpending({ subscriptionId: subscription.id, from: FROM.toISOString(), at, periodEnd: TO.toISOString() });
    expect(result.spend).not.toBe('0');
  }
  const windows = await db('usage_rollup_windows').where({ customer_id: customer.id }).select('period_start', 'period_end');
  expect(windows).toEqual([{ period_start: FROM, period_end: TO }]);
});
