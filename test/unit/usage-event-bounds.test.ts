import { chargeMetricMismatches, MetricShape } from '../../domain/charge-metric-fit';
import {
  EventValidationContext,
  MetricRequirement,
  parseEventTimestamp,
  RawUsageEvent,
  USAGE_EVENT_LIMITS,
  utf8Length,
  validateUsageEvent,
} from '../../domain/usage-events';

const tokens: MetricRequirement = { code: 'tokens', property: 'tokens', numeric: true, allowNegative: false, filters: {} };
const corrections: MetricRequirement = { code: 'corrections', property: 'delta', numeric: true, allowNegative: true, filters: {} };

const context: EventValidationContext = {
  now: new Date('2027-03-10T12:00:00Z'),
  maxFutureMs: 300_000,
  customerIdByExternalId: new Map([['acme', 'c-1'], ['newcomer', 'c-2']]),
  firstSubscriptionStartByCustomerId: new Map([['c-1', new Date('2027-03-01T12:00:00.400Z')]]),
  metricsByEventType: new Map([
    ['llm.request', [tokens]],
    ['credit.given', [corrections]],
  ]),
};

function event(overrides: Partial<RawUsageEvent> = {}): RawUsageEvent {
  return { id: 'e-1', customer: 'acme', type: 'llm.request', timestamp: '2027-03-10T11:00:00Z', properties: { tokens: '100' }, ...overrides };
}

const codeOf = (raw: RawUsageEvent) => {
  const verdict = validateUsageEvent(raw, context);
  return verdict.ok ? 'ok' : verdict.code;
};

describe('numeric values', () => {
  it.each([
    ['a negative decimal string', '-50000', 'negative_value'],
    ['a negative JSON number', -5, 'negative_value'],
    ['a negative fraction', '-0.5', 'negative_value'],
    ['minus zero (aggregation could not read it)', '-0', 'negative_value'],
    ['minus zero with a fraction', '-0.00', 'negative_value'],
    ['a JSON minus zero (its text is 0)', -0, 'ok'],
    ['twelve integer digits', '999999999999', 'ok'],
    ['twelve integer digits and twelve fraction digits', '999999999999.999999999999', 'ok'],
    ['thirteen integer digits', '1000000000000', 'value_out_of_range'],
    ['nineteen integer digits', '1234567890123456789', 'value_out_of_range'],
    ['twenty integer digits', '12345678901234567890', 'value_out_of_range'],
    ['a 16-digit safe integer', 9_007_199_254_740_991, 'value_out_of_range'],
    ['leading zeros that keep it small', '0000000000000001', 'ok'],
  ])('%s: %s', (_name, value, expected) => {
    expect(codeOf(event({ properties: { tokens: value } }))).toBe(expected);
  });

  it('takes negative values only on a metric that allows them, still within the digit bound', () => {
    expect(codeOf(event({ type: 'credit.given', properties: { delta: '-50000' } }))).toBe('ok');
    expect(codeOf(event({ type: 'credit.given', properties: { delta: -5 } }))).toBe('ok');
    expect(codeOf(event({ type: 'credit.given', properties: { delta: '-1234567890123' } }))).toBe('value_out_of_range');
  });
});

describe('sizes', () => {
  it('refuses a property value over 1 KB and an event over 16 KB', () => {
    expect(USAGE_EVENT_LIMITS.maxPropertyValueBytes).toBe(1024);
    expect(USAGE_EVENT_LIMITS.maxPropertiesBytes).toBe(16 * 1024);
    expect(codeOf(event({ properties: { tokens: '1', note: 'x'.repeat(1_000) } }))).toBe('ok');
    expect(codeOf(event({ properties: { tokens: '1', note: 'x'.repeat(1_100) } }))).toBe('property_too_large');
    expect(codeOf(event({ properties: { tokens: '1', note: 'é'.repeat(600) } }))).toBe('property_too_large');
    expect(codeOf(event({ properties: { tokens: '1', nested: { deep: 'x'.repeat(1_100) } } }))).toBe('property_too_large');
    const many = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`p${i}`, 'x'.repeat(1_000)]));
    expect(codeOf(event({ properties: { tokens: '1', ...many } }))).toBe('event_too_large');
  });

  it('counts UTF-8 bytes', () => {
    expect(utf8Length('aé€😀')).toBe(1 + 2 + 3 + 4);
  });
});

describe('timestamps', () => {
  it.each([
    ['2026-02-30T00:00:00Z', undefined],
    ['2027-02-29T00:00:00Z', undefined],
    ['2028-02-29T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['2027-04-31T00:00:00Z', undefined],
    ['2027-13-01T00:00:00Z', undefined],
    ['2027-01-01T24:00:00Z', undefined],
    ['2027-01-01T23:59:60Z', undefined],
    ['2027-01-01T12:00:00+25:00', undefined],
    ['2027-01-01T12:00:00+02:00', '2027-01-01T10:00:00.000Z'],
    ['2027-01-01T12:00:00', undefined],
    // Postgres has no year 0: before 0001-01-01 UTC the insert would fail.
    ['0000-01-01T00:00:00Z', undefined],
    ['0001-01-01T00:30:00+01:00', undefined],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
  ])('%s reads as %s', (text, expected) => {
    expect(parseEventTimestamp(text)?.toISOString()).toBe(expected);
  });

  it('refuses an impossible date instead of rolling it over', () => {
    expect(codeOf(event({ timestamp: '2027-02-30T10:00:00Z' }))).toBe('invalid_timestamp');
  });

  it('refuses usage before the first subscription start, to the millisecond', () => {
    expect(codeOf(event({ timestamp: '1970-01-01T00:00:00Z' }))).toBe('timestamp_before_subscription');
    expect(codeOf(event({ timestamp: '2027-03-01T12:00:00Z' }))).toBe('timestamp_before_subscription');
    expect(codeOf(event({ timestamp: '2027-03-01T12:00:00.400Z' }))).toBe('ok');
  });

  it('keeps the events of a customer with no subscription yet (a back-dated subscription may bill them)', () => {
    expect(codeOf(event({ customer: 'newcomer', timestamp: '2027-03-01T00:00:00Z' }))).toBe('ok');
  });
});

describe('charges against their metrics', () => {
  const metrics = new Map<string, MetricShape>([
    ['tokens', { code: 'tokens', aggregation: 'sum', property: 'tokens', allowNegative: false }],
    ['payments', { code: 'payments', aggregation: 'count', property: 'amount', allowNegative: false }],
    ['calls', { code: 'calls', aggregation: 'count', property: null, allowNegative: false }],
  ]);
  const percentage = { model: 'percentage' };

  it('refuses a percentage charge on anything but a count metric with a property', () => {
    expect(chargeMetricMismatches([{ metricCode: 'payments', price: percentage }], metrics)).toEqual([]);
    expect(chargeMetricMismatches([{ metricCode: 'tokens', price: { model: 'per_unit' } }], metrics)).toEqual([]);
    expect(
      chargeMetricMismatches(
        [
          { metricCode: 'payments', price: percentage },
          { metricCode: 'tokens', price: percentage },
          { metricCode: 'calls', price: percentage },
        ],
        metrics,
      ).map((problem) => problem.index),
    ).toEqual([1, 2]);
  });
});
