/**
 * Which subscription's block or cap refuses an event (store/usage.ts `usageStopAt`): the one that prices the event's
 * type at its time. Worked examples, by hand:
 *
 *   A prices a.call, paused [10:00, open)   B prices b.call, capped [08:00, 12:00)   both from 00:00
 *   a.call 11:00 -> usage_blocked (A's)     b.call 11:00 -> usage_cap_reached (B's)    b.call 12:00 -> accepted
 *   a.call 09:00 -> accepted (before the pause; B's cap is not A's)
 *   x.log (priced by neither) 11:00 -> refused by a stop then (it bills nothing), the block named first
 */
import type { PricedStretch } from '../../domain/usage-events';
import { usageStopAt, type UsageStop } from '../../store/usage';

const at = (hour: number) => new Date(Date.UTC(2030, 0, 1, hour));
const priced = (subscriptionId: string, type: string): PricedStretch & { subscriptionId: string } => ({ from: at(0), until: null, eventTypes: new Set([type]), subscriptionId });
const stops: UsageStop[] = [
  { from: at(8), until: at(12), subscriptionId: 'B', refusal: 'usage_cap_reached' },
  { from: at(10), until: null, subscriptionId: 'A', refusal: 'usage_blocked' },
];
const both = [priced('A', 'a.call'), priced('B', 'b.call')];
const refusal = (type: string, hour: number, stretches = both) => usageStopAt(stops, at(hour), type, stretches)?.refusal;

test('the stop of the subscription that prices the type at the event time refuses it, no other', () => {
  expect([refusal('a.call', 11), refusal('b.call', 11), refusal('b.call', 12), refusal('a.call', 9)]).toEqual(['usage_blocked', 'usage_cap_reached', undefined, undefined]);
});

test('a type no subscription prices then is refused by any stop then, the block named first', () => {
  expect([refusal('x.log', 11), refusal('x.log', 9), refusal('x.log', 7)]).toEqual(['usage_blocked', 'usage_cap_reached', undefined]);
});

test('a customer with one plan (no priced stretches asked): every stop refuses its usage', () => {
  const alone = (hour: number) => usageStopAt(stops, at(hour), 'b.call', undefined)?.refusal;
  expect([alone(9), alone(10), alone(13), usageStopAt(undefined, at(11), 'a.call', undefined)]).toEqual(['usage_cap_reached', 'usage_blocked', 'usage_blocked', undefined]);
});
