/**
 * graceWindowFitsInterval (domain/plan-terms.ts): a plan's usage grace window must end before its next period does,
 * whatever the month lengths, so a period's invoice is issued within the period it bills in advance.
 */
import { graceWindowFitsInterval } from '../../domain/plan-terms';

test.each([
  ['P1M', 'P27D', true],
  ['P1M', 'P28D', false], // February is 28 days long
  ['P1M', 'P1M', false],
  ['P2M', 'P1M27D', true],
  ['P2M', 'P1M28D', false], // Dec 31 -> Feb 28 is 59 days; a 31-day month and 28 days is 59 too
  ['P1Y', 'P11M', true],
  ['P1Y', 'P12M', false],
  ['P1D', 'PT23H59M59S', true],
  ['P1D', 'PT24H', false],
  ['PT1M', 'PT1H', false],
  ['PT1M', 'PT5S', true],
])('interval %s with grace window %s fits: %s', (interval, grace, fits) => {
  expect(graceWindowFitsInterval(interval, grace)).toBe(fits);
});
