/**
 * The calendar a resume restarts (workflows/subscription/transitions.ts `moveCalendarBy`): the moved period keeps
 * its moved start and ends at the anchor, the periods after it are placed from the anchor with month-end clamping
 * from its day, and a run handed over mid-period goes on billing the moved period, not one placed back from the anchor.
 *
 *   period 2 (moved): 2033-03-02 .. 03-31 | 3: .. 04-30 | 4: .. 05-31
 */
import { parseInterval } from '../../domain/periods';
import type { SubscriptionWorkflowInput } from '../../workflows/definitions';
import { carriedState, periodOnCalendar, startRun } from '../../workflows/subscription/state';

const MONTH = parseInterval('P1M');
const iso = (period: { index: number; start: Date; end: Date }): string => `${period.index}: ${period.start.toISOString().slice(0, 10)} .. ${period.end.toISOString().slice(0, 10)}`;

const calendar = { billingAnchor: new Date('2033-03-31T00:00:00Z'), anchorPeriodIndex: 3, movedPeriodStart: new Date('2033-03-02T00:00:00Z') };

test('the moved period ends at the anchor; the next ones follow monthly from its day, clamped (Apr 30, May 31)', () => {
  expect([2, 3, 4].map((index) => iso(periodOnCalendar(calendar, MONTH, index)))).toEqual(['2: 2033-03-02 .. 2033-03-31', '3: 2033-03-31 .. 2033-04-30', '4: 2033-04-30 .. 2033-05-31']);
});

test('without a restart the anchor starts period 0, as before', () => {
  const plain = { billingAnchor: new Date('2033-01-31T00:00:00Z'), anchorPeriodIndex: 0, movedPeriodStart: null };
  expect(iso(periodOnCalendar(plain, MONTH, 1))).toBe('1: 2033-02-28 .. 2033-03-31');
});

const input = (carried: SubscriptionWorkflowInput['carried']): SubscriptionWorkflowInput =>
  ({ subscriptionId: 'sub-1', customerId: 'cus-1', startAt: '2033-01-01T00:00:00Z', plan: { planId: 'plan-1', billingInterval: 'P1M' }, carried }) as unknown as SubscriptionWorkflowInput;

const movedRun = (): ReturnType<typeof startRun> =>
  startRun(
    input({
      status: 'active',
      billingAnchor: calendar.billingAnchor.toISOString(),
      periodIndex: 2,
      anchorPeriodIndex: 3,
      movedPeriodStart: calendar.movedPeriodStart.toISOString(),
      periodOpened: true,
      usageOpenSince: '2033-03-01T00:00:00Z',
      usagePlanId: 'plan-1',
      pendingCancellation: null,
      scheduledChange: null,
      discount: null,
      timeline: [],
    }),
  );

test('handed over mid-period, the next run bills the same moved period', () => {
  const run = movedRun();
  const next = startRun(input(carriedState(run, false)));
  expect(iso(periodOnCalendar(next, next.interval, next.periodIndex))).toBe('2: 2033-03-02 .. 2033-03-31');
});

test('handed over at the boundary, the next run bills the first period of the restarted calendar and carries no moved start', () => {
  const carried = carriedState(movedRun(), true);
  expect(carried.movedPeriodStart).toBeUndefined();
  const next = startRun(input(carried));
  expect(iso(periodOnCalendar(next, next.interval, next.periodIndex))).toBe('3: 2033-03-31 .. 2033-04-30');
});
