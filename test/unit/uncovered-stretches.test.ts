/**
 * The stretches no subscription of a customer bills (domain/usage-events.ts `uncoveredStretches`): ingestion refuses
 * usage stamped there, which no period could ever bill.
 */
import { BilledSpan, uncoveredStretches } from '../../domain/usage-events';

const day = (n: number) => new Date(Date.UTC(2034, 0, n));
const span = (start: number, end: number | null): BilledSpan => ({ start: day(start), end: end === null ? null : day(end) });
const stretch = (from: number, until: number | null) => ({ from: day(from), until: until === null ? null : day(until) });

test('a subscription that goes on leaves nothing uncovered; one that ended leaves the time after its end', () => {
  expect(uncoveredStretches([])).toEqual([]);
  expect(uncoveredStretches([span(1, null)])).toEqual([]);
  expect(uncoveredStretches([span(1, 10)])).toEqual([stretch(10, null)]);
});

test('between an ended subscription and a later one: the gap, and nothing after the later one while it goes on', () => {
  expect(uncoveredStretches([span(20, null), span(1, 10)])).toEqual([stretch(10, 20)]);
  expect(uncoveredStretches([span(1, 10), span(20, 25)])).toEqual([stretch(10, 20), stretch(25, null)]);
});

test('overlapping and touching subscriptions cover their union', () => {
  expect(uncoveredStretches([span(1, 15), span(10, 12), span(15, 20)])).toEqual([stretch(20, null)]);
  expect(uncoveredStretches([span(1, 15), span(5, null), span(30, 31)])).toEqual([]);
});

test('a subscription canceled before its start bills nothing, but its start is still the first start', () => {
  expect(uncoveredStretches([span(5, 3)])).toEqual([stretch(5, null)]);
  expect(uncoveredStretches([span(1, 1), span(10, null)])).toEqual([stretch(1, 10)]);
});
