/**
 * A feature limit counts the events of its metric's type in its subscription's period, except where another
 * subscription of the customer prices that type (domain/entitlements.ts `ownLimitWindows`):
 *
 *   window        [00:00 ------------------------------------------ 24:00)
 *   B prices call           [06:00 ------ 12:00)        [18:00 ----------> (goes on)
 *   A's own pieces [00:00 - 06:00)        [12:00 ------ 18:00)
 */
import { ownLimitWindows, type SubscriptionTypesStretch } from '../../domain/entitlements';

const at = (hour: number) => new Date(Date.UTC(2026, 0, 1, hour));
const window = { customerId: 'acme', from: at(0), to: at(24) };
const stretch = (subscriptionId: string, from: number, until: number | null, types: string[]): SubscriptionTypesStretch => ({
  subscriptionId,
  from: at(from),
  until: until === null ? null : at(until),
  eventTypes: new Set(types),
});
const hours = (pieces: { from: Date; to: Date }[]) => pieces.map(({ from, to }) => [from.getUTCHours() + (from.getUTCDate() - 1) * 24, to.getUTCHours() + (to.getUTCDate() - 1) * 24]);

test('the stretches in which another subscription prices the type are cut out of the window', () => {
  const pieces = ownLimitWindows(window, 'A', 'call', [stretch('B', 6, 12, ['call']), stretch('B', 18, null, ['call'])]);
  expect(hours(pieces)).toEqual([
    [0, 6],
    [12, 18],
  ]);
  expect(pieces.every((piece) => piece.customerId === 'acme')).toBe(true);
});

test("the subscription's own stretches, and other subscriptions' stretches of other types, cut nothing", () => {
  const pieces = ownLimitWindows(window, 'A', 'call', [stretch('A', 0, null, ['call']), stretch('B', 0, null, ['seat'])]);
  expect(hours(pieces)).toEqual([[0, 24]]);
});

test('another subscription pricing the type over the whole window leaves the limit nothing to count', () => {
  expect(ownLimitWindows(window, 'A', 'call', [stretch('B', -5, null, ['call'])])).toEqual([]);
});

test('stretches outside the window, or touching its edges, leave it whole', () => {
  const pieces = ownLimitWindows(window, 'A', 'call', [stretch('B', -10, 0, ['call']), stretch('C', 24, 30, ['call'])]);
  expect(hours(pieces)).toEqual([[0, 24]]);
});
