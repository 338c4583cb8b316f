/**
 * The pure pieces behind three ingestion edges (docs/usage-events.md): JSON numbers read as sent or marked, the
 * stretches in which a customer's subscriptions price each event type, and the refusal of an event of a priced type
 * stamped where none prices it. Worked examples checked by hand.
 */
import { isExactJsonNumber, parseKeepingInexactNumbers } from '../../api/exact-json-numbers';
import { EventValidationContext, InexactJsonNumber, pricedStretches, validateUsageEvent } from '../../domain/usage-events';

test('a JSON number is exact when its double is the very value written', () => {
  for (const text of ['0', '-0', '7', '123456789012345', '1E2', '2.50', '0.1', '1e21', '-1.5e-3']) expect([text, isExactJsonNumber(text)]).toEqual([text, true]);
  for (const text of ['1e400', '-1e400', '1e-400', '12345678901234567891', '4.99999999999999999999', '0.10000000000000001', '9'.repeat(400)]) {
    expect([text, isExactJsonNumber(text)]).toEqual([text, false]);
  }
});

test('only inexact literals are marked, strings and keys that look like numbers are left alone', () => {
  expect(parseKeepingInexactNumbers('{"a":1,"b":[2.5,"1e400"]}')).toBeUndefined();
  const parsed = parseKeepingInexactNumbers('{"1e400":"x\\"1e400","n":[1,1e400,{"m":-12345678901234567891}]}') as { n: [number, InexactJsonNumber, { m: InexactJsonNumber }] };
  expect(parsed).toEqual({ '1e400': 'x"1e400', n: [1, new InexactJsonNumber('1e400'), { m: new InexactJsonNumber('-12345678901234567891') }] });
});

const d = (iso: string) => new Date(`${iso}T00:00:00Z`);

test('a span is cut at its plan changes, each stretch with the types of the plan in force', () => {
  const types = new Map([['both', new Set(['calls', 'storage'])], ['calls', new Set(['calls'])]]);
  const stretches = pricedStretches({ start: d('2035-03-01'), end: null, planId: 'calls', changes: [{ at: d('2035-03-15'), oldPlanId: 'both' }] }, (plan) => types.get(plan)!);
  expect(stretches).toEqual([
    { from: d('2035-03-01'), until: d('2035-03-15'), eventTypes: types.get('both') },
    { from: d('2035-03-15'), until: null, eventTypes: types.get('calls') },
  ]);
  // Ended before the change: the stretch stops at the end; ended before it started: nothing.
  expect(pricedStretches({ start: d('2035-03-01'), end: d('2035-03-10'), planId: 'calls', changes: [] }, (plan) => types.get(plan)!)).toEqual([{ from: d('2035-03-01'), until: d('2035-03-10'), eventTypes: types.get('calls') }]);
  expect(pricedStretches({ start: d('2035-03-01'), end: d('2035-03-01'), planId: 'calls', changes: [] }, (plan) => types.get(plan)!)).toEqual([]);
});

test('an event of a priced type is refused where no stretch prices it, a type none prices is not', () => {
  const calls = new Set(['calls']);
  const storage = new Set(['storage']);
  const context: EventValidationContext = {
    now: d('2035-07-01'),
    maxFutureMs: 300_000,
    customerIdByExternalId: new Map([['np', 'c-1']]),
    firstSubscriptionStartByCustomerId: new Map([['c-1', d('2035-03-01')]]),
    pricedStretchesByCustomerId: new Map([['c-1', [{ from: d('2035-03-01'), until: null, eventTypes: calls }, { from: d('2035-06-01'), until: null, eventTypes: storage }]]]),
    metricsByEventType: new Map(),
  };
  const at = (type: string, day: string) => validateUsageEvent({ id: 'e', customer: 'np', type, timestamp: `${day}T00:00:00Z`, properties: {} }, context);
  expect(at('storage', '2035-05-01')).toMatchObject({ ok: false, code: 'timestamp_before_subscription' });
  expect(at('storage', '2035-06-01')).toMatchObject({ ok: true });
  expect(at('calls', '2035-05-01')).toMatchObject({ ok: true });
  expect(at('telemetry', '2035-05-01')).toMatchObject({ ok: true });
});
