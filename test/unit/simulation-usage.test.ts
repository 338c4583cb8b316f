import { shiftYearsFor } from '../../scripts/simulation/simulate';
import { generateUsage, parseCsv, parseGeneratorSpec, parseUsageCsv, startOfUtcMonth } from '../../scripts/simulation/usage';
import { addIntervals, parseInterval } from '../../domain/periods';

describe('usage CSV', () => {
  test('the full form: JSON properties in quotes, an optional id, a chosen customer', () => {
    const csv = [
      'timestamp,customer,type,properties,id',
      '2025-01-31T23:59:59Z,acme,llm.request,"{""tokens"":12,""model"":""large, fast""}",e1',
      '2025-02-01T00:00:00+01:00,other,llm.request,"{""tokens"":5}",e2',
      '2025-02-02T00:00:00Z,acme,ticket.resolved,,',
    ].join('\r\n');
    expect(() => parseUsageCsv(csv)).toThrow(/2 customers .*--customer/);
    expect(parseUsageCsv(csv, { customer: 'acme' })).toEqual([
      { id: 'e1', timestamp: new Date('2025-01-31T23:59:59Z'), type: 'llm.request', properties: { tokens: 12, model: 'large, fast' } },
      { id: 'row-4', timestamp: new Date('2025-02-02T00:00:00Z'), type: 'ticket.resolved', properties: {} },
    ]);
  });

  test('the simple form: one property and its value per event, empty for a counted event', () => {
    const csv = 'timestamp,event_type,property,value\n2025-01-05T10:00:00Z,llm.request,tokens,1500.5\n2025-01-06T10:00:00Z,ticket.resolved,,\n';
    expect(parseUsageCsv(csv).map((event) => [event.type, event.properties])).toEqual([
      ['llm.request', { tokens: '1500.5' }],
      ['ticket.resolved', {}],
    ]);
  });

  test('bad rows are named by line', () => {
    expect(() => parseUsageCsv('timestamp,type,properties\n2025-01-05 10:00,x,{}\n')).toThrow(/line 2: timestamp/);
    expect(() => parseUsageCsv('timestamp,type,properties\n2025-01-05T10:00:00Z,x,{nope}\n')).toThrow(/line 2: properties is not JSON/);
    expect(() => parseUsageCsv('when,what\n')).toThrow(/header needs "timestamp"/);
    expect(() => parseCsv('a,"b\n')).toThrow(/not closed/);
  });
});

describe('generated usage', () => {
  const start = new Date('2025-01-01T00:00:00Z');

  test('each month adds up exactly to its amount (grown month over month), at instants inside the month', () => {
    const usage = generateUsage([parseGeneratorSpec('llm.request:tokens=1000000.5@7'), parseGeneratorSpec('ticket.resolved=40')], { start, periods: 3, growthPercent: '10', seed: 3 });
    const month = (index: number) => [addIntervals(start, parseInterval('P1M'), index), addIntervals(start, parseInterval('P1M'), index + 1)];
    const expected = ['1000000.5', '1100000.6', '1210000.6']; // x 1.1 per month, rounded to the amount's one decimal
    expected.forEach((total, index) => {
      const [from, to] = month(index);
      const inMonth = usage.filter((event) => event.timestamp >= from && event.timestamp < to);
      const tokens = inMonth.filter((event) => event.type === 'llm.request');
      expect(tokens).toHaveLength(7);
      const tenths = tokens.reduce((sum, event) => sum + BigInt((event.properties.tokens as string).replace('.', '')), 0n);
      expect(tenths.toString()).toBe(total.replace('.', ''));
      expect(inMonth.filter((event) => event.type === 'ticket.resolved')).toHaveLength([40, 44, 48][index]);
    });
    expect(generateUsage([parseGeneratorSpec('ticket.resolved=40')], { start, periods: 2, seed: 3 })).toEqual(
      generateUsage([parseGeneratorSpec('ticket.resolved=40')], { start, periods: 2, seed: 3 }),
    );
  });

  test('specs are checked', () => {
    expect(parseGeneratorSpec('ticket.resolved=40')).toEqual({ eventType: 'ticket.resolved', property: null, amountPerMonth: '40', eventsPerMonth: 30 });
    expect(() => parseGeneratorSpec('tokens')).toThrow(/expected/);
    expect(() => parseGeneratorSpec('ticket.resolved=1.5')).toThrow(/whole number/);
  });
});

test('usage from the past is replayed whole 4-year steps later, so every month keeps its length and leap day', () => {
  const now = new Date('2026-11-29T07:00:00Z');
  expect(shiftYearsFor(new Date('2027-01-01T00:00:00Z'), now)).toBe(0);
  expect(shiftYearsFor(new Date('2026-11-30T00:00:00Z'), now)).toBe(4); // not more than a day ahead
  expect(shiftYearsFor(new Date('2024-02-01T00:00:00Z'), now)).toBe(4);
  expect(shiftYearsFor(new Date('2019-03-01T00:00:00Z'), now)).toBe(8);
  const leapDay = new Date('2024-02-29T12:00:00Z');
  expect(addIntervals(leapDay, parseInterval('P1Y'), 4).toISOString()).toBe('2028-02-29T12:00:00.000Z');
  expect(startOfUtcMonth(new Date('2025-03-31T23:59:59+00:00'))).toEqual(new Date('2025-03-01T00:00:00Z'));
});
