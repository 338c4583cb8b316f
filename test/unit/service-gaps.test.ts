/**
 * A subscription's service gaps (domain/usage-events.ts `spansAroundGaps`): a won-back subscription bills its span
 * less the stretches from each billed end to the restart, and ingestion refuses usage stamped in them.
 */
import { BilledSpan, ServiceGap, spansAroundGaps, uncoveredStretches } from '../../domain/usage-events';

const day = (n: number) => new Date(Date.UTC(2034, 0, n));
const span = (start: number, end: number | null): BilledSpan => ({ start: day(start), end: end === null ? null : day(end) });
const gap = (from: number, until: number): ServiceGap => ({ from: day(from), until: day(until) });
const stretch = (from: number, until: number | null) => ({ from: day(from), until: until === null ? null : day(until) });

test('without gaps the span is billed whole', () => {
  expect(spansAroundGaps(span(1, null), [])).toEqual([span(1, null)]);
});

test('each gap, in any order, cuts the span; the time between gaps and after the last restart is billed', () => {
  expect(spansAroundGaps(span(1, null), [gap(20, 25), gap(5, 10)])).toEqual([span(1, 5), span(10, 20), span(25, null)]);
  expect(uncoveredStretches(spansAroundGaps(span(1, null), [gap(20, 25), gap(5, 10)]))).toEqual([stretch(5, 10), stretch(20, 25)]);
  expect(uncoveredStretches(spansAroundGaps(span(1, 30), [gap(5, 10)]))).toEqual([stretch(5, 10), stretch(30, null)]);
});

test('a gap from the very start keeps the start as the first start; a gap past the end bills nothing more', () => {
  expect(uncoveredStretches(spansAroundGaps(span(1, null), [gap(1, 10)]))).toEqual([stretch(1, 10)]);
  expect(uncoveredStretches(spansAroundGaps(span(1, 8), [gap(12, 20)]))).toEqual([stretch(8, null)]);
});

test('another subscription covering a gap leaves nothing uncovered there', () => {
  expect(uncoveredStretches([...spansAroundGaps(span(1, null), [gap(5, 10)]), span(4, 12)])).toEqual([]);
});
