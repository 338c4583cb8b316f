/**
 * Seeded scenarios for the whole-lifecycle simulation: one or two subscriptions over two or three monthly periods, with
 * usage at awkward values and instants, lifecycle requests at random instants (boundaries and grace windows
 * included), payment methods that decline, lose responses or answer slowly, and worker restarts.
 *
 * The same seed always gives the same scenario (mulberry32, see seeded-random.ts); every instant is relative to
 * the base the runner passes in, which is always a 1 January whose year is 2030 + 4k, so calendars repeat.
 *
 * Operation kinds are switched by name (SIM_OPS). The ones that hit a known bug that is being fixed on another
 * branch are generated only when enabled: KNOWN_BUG_OPERATIONS names the bug for each.
 */
import { addIntervals, parseInterval } from '../../domain/periods';
import { SIM_GRACE_MS, SIM_INTERVAL, SIM_PLANS } from './scenario-catalog';
import { seededRandom } from './seeded-random';

export const OPERATION_KINDS = [
  'events',
  'edge_values',
  'boundary_events',
  'grace_events',
  'duplicates',
  'late_events',
  'plan_change_now',
  'plan_change_period_end',
  'cancel_now',
  'cancel_period_end',
  'pause_resume',
  'declined_payments',
  'lost_responses',
  'slow_payments',
  'worker_restarts',
  // Refused at the edge since wp-edge (issue 11 item 1): the model expects the rejection.
  'pre_start_events',
  'oversized_values',
  // Found as bugs and fixed in issue 11: an immediate plan change in the grace window bills the closed period's usage
  // on its period invoice only; a period-end cancel while paused and a pause while a period opens are refused (409).
  'plan_change_in_grace',
  'cancel_period_end_while_paused',
  'pause_in_grace_declined',
] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

/** Kinds that reproduce a known bug; enable them (SIM_OPS=+kind) once the fix is merged. */
export const KNOWN_BUG_OPERATIONS: Readonly<Partial<Record<OperationKind, string>>> = {};

export const DEFAULT_OPERATIONS: ReadonlySet<OperationKind> = new Set(OPERATION_KINDS.filter((kind) => !(kind in KNOWN_BUG_OPERATIONS)));

/**
 * The operation kinds from a flag list: empty means the defaults; `+kind` / `-kind` adjust the defaults; a plain
 * list (`events,cancel_now`) replaces them; `all` is every kind, known bugs included.
 */
export function operationsFromFlags(flags: string | undefined): Set<OperationKind> {
  const items = (flags ?? '').split(',').map((item) => item.trim()).filter(Boolean);
  const known = (name: string): OperationKind => {
    if (!(OPERATION_KINDS as readonly string[]).includes(name)) throw new Error(`unknown simulation operation kind ${name}; known: ${OPERATION_KINDS.join(', ')}`);
    return name as OperationKind;
  };
  if (items.length === 0) return new Set(DEFAULT_OPERATIONS);
  if (items.includes('all')) return new Set(OPERATION_KINDS);
  const adjusting = items.every((item) => item.startsWith('+') || item.startsWith('-'));
  const kinds = new Set<OperationKind>(adjusting ? DEFAULT_OPERATIONS : []);
  for (const item of items) {
    if (item.startsWith('-')) kinds.delete(known(item.slice(1)));
    else kinds.add(known(item.replace(/^\+/, '')));
  }
  return kinds;
}

export type PaymentMethod = 'pm_sandbox_ok' | 'pm_sandbox_declines_1_then_ok' | 'pm_sandbox_declines_2_then_ok' | 'pm_sandbox_lost_response' | 'pm_sandbox_slow';

/** Dunning retries of the default terms (P1D, P3D, ...): when a declines-N-then-ok invoice gets paid. */
export const DUNNING_DELAYS_MS = [1, 3, 5, 7].map((days) => days * 86_400_000);

export function declinesBeforeSuccess(paymentMethod: string): number {
  const match = /^pm_sandbox_declines_(\d+)_then_ok$/.exec(paymentMethod);
  return match ? Number(match[1]) : 0;
}

export interface ScenarioSubscription {
  readonly index: number;
  /** The customer's external id, unique per seed. */
  readonly customer: string;
  readonly planCode: string;
  readonly paymentMethod: PaymentMethod;
  readonly startAt: Date;
}

export interface SimEvent {
  readonly id: string;
  readonly timestamp: string;
  /** As sent: a JSON integer or a decimal string. */
  readonly tokens: number | string;
}

export type PlannedOperation = { readonly at: Date; readonly note: string } & (
  | { readonly kind: 'create'; readonly subscription: number }
  | { readonly kind: 'event'; readonly subscription: number; readonly event: SimEvent }
  | { readonly kind: 'plan_change'; readonly subscription: number; readonly planCode: string; readonly effective: 'immediate' | 'period_end' }
  | { readonly kind: 'cancel'; readonly subscription: number; readonly when: 'now' | 'period_end'; readonly final?: boolean }
  | { readonly kind: 'pause'; readonly subscription: number }
  | { readonly kind: 'resume'; readonly subscription: number }
  | { readonly kind: 'restart_worker' }
);

export interface Scenario {
  readonly seed: number;
  readonly base: Date;
  readonly periods: number;
  readonly operationKinds: readonly OperationKind[];
  readonly subscriptions: readonly ScenarioSubscription[];
  /** Sorted by `at` (stable: the order within an instant is the order of generation). */
  readonly operations: readonly PlannedOperation[];
  /** When every invoice, closure and late listing is final and the invariants are checked. */
  readonly checkAt: Date;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const MONTH = parseInterval(SIM_INTERVAL);

/**
 * The period boundaries from `startAt` with the planned pauses given back (docs/api.md, "Pause and resume"): a pause
 * that starts in a period moves that period's end by its length, and the calendar restarts at the moved end.
 */
function movedBoundaries(startAt: Date, pauses: readonly { from: number; to: number }[], periods: number): number[] {
  const sorted = [...pauses].sort((a, b) => a.from - b.from);
  const boundaries = [startAt.getTime()];
  let anchor = startAt;
  let anchorIndex = 0;
  for (let j = 1; j <= periods; j += 1) {
    const onCalendar = addIntervals(anchor, MONTH, j - anchorIndex).getTime();
    let end = onCalendar;
    for (const pause of sorted) if (pause.from >= boundaries[j - 1] && pause.from < end) end += pause.to - pause.from;
    if (end !== onCalendar) [anchor, anchorIndex] = [new Date(end), j];
    boundaries.push(end);
  }
  return boundaries;
}

export function generateScenario(seed: number, base: Date, kinds: ReadonlySet<OperationKind>): Scenario {
  const random = seededRandom(seed);
  const int = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));
  const chance = (p: number): boolean => random() < p;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const on = (kind: OperationKind): boolean => kinds.has(kind);

  const periods = int(2, 3);
  const subscriptionCount = int(1, 2);
  const operations: PlannedOperation[] = [];
  const subscriptions: ScenarioSubscription[] = [];
  let latestFinalCancel = base.getTime();

  for (let index = 0; index < subscriptionCount; index += 1) {
    const startAt = new Date(base.getTime() + int(0, 3) * DAY + int(0, 1439) * MINUTE);
    const cards: PaymentMethod[] = ['pm_sandbox_ok', 'pm_sandbox_ok', 'pm_sandbox_ok'];
    if (on('declined_payments')) cards.push('pm_sandbox_declines_1_then_ok', 'pm_sandbox_declines_2_then_ok');
    if (on('lost_responses')) cards.push('pm_sandbox_lost_response');
    if (on('slow_payments')) cards.push('pm_sandbox_slow');
    const subscription: ScenarioSubscription = { index, customer: `sim-${seed}-${index}`, planCode: pick(SIM_PLANS).code, paymentMethod: pick(cards), startAt };
    subscriptions.push(subscription);
    const boundary = (j: number): Date => addIntervals(startAt, MONTH, j);
    const at = (ms: number): Date => new Date(ms);
    operations.push({ kind: 'create', subscription: index, at: startAt, note: `create on ${subscription.planCode}, ${subscription.paymentMethod}` });

    // Lifecycle requests first: events stop at the first cancellation, and pauses decide where boundaries move.
    type Style = 'inside' | 'before_boundary' | 'grace' | 'after_grace';
    const instant = (style: Style): number => {
      const j = style === 'inside' || style === 'before_boundary' ? int(0, periods - 1) : int(1, periods - 1);
      const start = boundary(j).getTime();
      const end = boundary(j + 1).getTime();
      if (style === 'inside') return start + HOUR + Math.floor(random() * (end - start - 3 * HOUR));
      if (style === 'before_boundary') return end - int(1, 10) * MINUTE;
      if (style === 'grace') return start + int(2, 50) * MINUTE;
      return start + SIM_GRACE_MS + int(1, 10) * MINUTE;
    };
    const styles: Style[] = ['inside', 'inside', 'before_boundary', 'grace', 'after_grace'];
    const pauses: { from: number; to: number }[] = [];
    const lifecycle: PlannedOperation[] = [];
    const lifecycleKinds = (['plan_change_now', 'plan_change_period_end', 'cancel_now', 'cancel_period_end', 'pause_resume'] as const).filter(on);
    const requests = lifecycleKinds.length ? int(0, 3) : 0;
    for (let n = 0; n < requests; n += 1) {
      const kind = pick(lifecycleKinds);
      const style = pick(styles);
      const when = instant(style);
      const note = `${kind} (${style})`;
      if (kind === 'pause_resume') {
        const to = when + pick([30 * MINUTE, 6 * HOUR, 2 * DAY, 10 * DAY]) + int(0, 59) * MINUTE;
        pauses.push({ from: when, to });
        lifecycle.push({ kind: 'pause', subscription: index, at: at(when), note }, { kind: 'resume', subscription: index, at: at(to), note: `resume after ${note}` });
      } else if (kind === 'cancel_now' || kind === 'cancel_period_end') {
        lifecycle.push({ kind: 'cancel', subscription: index, when: kind === 'cancel_now' ? 'now' : 'period_end', at: at(when), note });
      } else {
        const others = SIM_PLANS.filter((plan) => plan.code !== subscription.planCode);
        lifecycle.push({ kind: 'plan_change', subscription: index, planCode: pick([...others, ...SIM_PLANS]).code, effective: kind === 'plan_change_now' ? 'immediate' : 'period_end', at: at(when), note });
      }
    }
    // Where boundaries really fall (nominally; the model uses the real instants). Both the moved and the calendar
    // boundaries are avoided.
    const shiftedBoundaries = movedBoundaries(startAt, pauses, periods).concat(Array.from({ length: periods + 1 }, (_, j) => boundary(j).getTime()));
    const inAnyGrace = (ms: number): boolean => shiftedBoundaries.some((b) => ms >= b - 2 * MINUTE && ms <= b + SIM_GRACE_MS + 2 * MINUTE);
    const inAnyPause = (ms: number): boolean => pauses.some((pause) => ms >= pause.from - MINUTE && ms <= pause.to + MINUTE);
    const skipped = new Set<PlannedOperation>();
    for (const request of lifecycle) {
      if (request.kind === 'plan_change' && request.effective === 'immediate' && !on('plan_change_in_grace') && inAnyGrace(request.at.getTime())) continue;
      if (request.kind === 'cancel' && request.when === 'period_end' && !on('cancel_period_end_while_paused') && inAnyPause(request.at.getTime())) continue;
      const declines = subscription.paymentMethod.startsWith('pm_sandbox_declines_');
      if (request.kind === 'pause' && declines && !on('pause_in_grace_declined') && inAnyGrace(request.at.getTime())) {
        // Its resume goes with it.
        const resume = lifecycle[lifecycle.indexOf(request) + 1];
        skipped.add(resume);
        continue;
      }
      if (skipped.has(request)) continue;
      operations.push(request);
    }
    const firstCancel = Math.min(
      ...operations.filter((op) => op.kind === 'cancel' && op.subscription === index).map((op) => op.at.getTime()),
      boundary(periods).getTime() + 2 * HOUR,
    );
    const finalCancelAt = boundary(periods).getTime() + 2 * HOUR;
    latestFinalCancel = Math.max(latestFinalCancel, finalCancelAt);
    operations.push({ kind: 'cancel', subscription: index, when: 'now', final: true, at: at(finalCancelAt), note: 'final cancellation' });

    // Usage.
    let eventNumber = 0;
    const tokens = (): number | string => {
      const style = on('edge_values') ? int(0, 9) : 9;
      if (style === 0) return pick([0, '0', '0.000']);
      if (style === 1) return String(int(1, 9)) + String(int(100_000_000, 999_999_999)) + String(int(0, 99)).padStart(2, '0'); // 12 digits: the most the edge takes
      if (style === 2) return `${int(0, 999)}.${String(int(0, 999)).padStart(3, '0')}`;
      if (style === 3 && on('oversized_values')) return '9' + String(int(100_000_000, 999_999_999)).repeat(2); // 19 digits
      return int(1, 60_000);
    };
    const addEvent = (timestamp: number, postAt: number, note: string): void => {
      if (timestamp >= firstCancel - MINUTE || postAt >= firstCancel - MINUTE) return; // nothing is sent for a subscription that is ending
      const event: SimEvent = { id: `ev-${seed}-${index}-${eventNumber++}`, timestamp: new Date(timestamp).toISOString(), tokens: tokens() };
      operations.push({ kind: 'event', subscription: index, event, at: at(postAt), note });
      if (on('duplicates') && chance(0.15)) operations.push({ kind: 'event', subscription: index, event, at: at(postAt + pick([MINUTE, 2 * HOUR, 3 * DAY])), note: `duplicate of ${event.id}` });
    };
    if (on('events')) {
      for (let j = 0; j < periods; j += 1) {
        const start = boundary(j).getTime();
        const end = boundary(j + 1).getTime();
        for (let n = int(0, 3); n > 0; n -= 1) {
          const timestamp = start + Math.floor(random() * (end - start));
          addEvent(timestamp, timestamp + int(0, 300) * 1000, 'timely');
        }
        if (on('boundary_events') && chance(0.5)) addEvent(start, start + int(0, 300) * 1000, 'exactly on the period start');
        if (on('boundary_events') && chance(0.3)) addEvent(end - 1, end + int(0, 200) * 1000, 'last millisecond of the period');
        if (on('grace_events') && chance(0.5)) addEvent(end - int(1, 600_000), end + int(1, 30) * MINUTE, 'inside the grace window');
      }
      if (on('pre_start_events') && chance(0.5)) addEvent(startAt.getTime() - int(1, 60) * MINUTE, startAt.getTime() + 2 * MINUTE, 'before the subscription start');
    }
    if (on('late_events')) {
      for (let n = int(0, 2); n > 0; n -= 1) {
        const until = Math.min(firstCancel, boundary(periods).getTime()) - HOUR;
        if (until <= startAt.getTime()) break;
        const timestamp = startAt.getTime() + Math.floor(random() * (until - startAt.getTime()));
        const event: SimEvent = { id: `ev-${seed}-${index}-late-${n}`, timestamp: new Date(timestamp).toISOString(), tokens: tokens() };
        // Sent after every closure: posted in the late phase below (its `at` is fixed there).
        operations.push({ kind: 'event', subscription: index, event, at: at(Number.POSITIVE_INFINITY), note: 'late: after the period closed' });
      }
    }
  }

  const latePhase = latestFinalCancel + 2 * HOUR + SIM_GRACE_MS;
  const placed = operations.map((op) => (Number.isFinite(op.at.getTime()) ? op : { ...op, at: new Date(latePhase) }));
  if (kinds.has('worker_restarts') && chance(0.3)) {
    for (let n = int(1, 2); n > 0; n -= 1) placed.push({ kind: 'restart_worker', at: new Date(base.getTime() + Math.floor(random() * (latestFinalCancel - base.getTime()))), note: 'worker restart' });
  }
  const sorted = placed.map((op, order) => ({ op, order })).sort((a, b) => a.op.at.getTime() - b.op.at.getTime() || a.order - b.order).map(({ op }) => op);
  return { seed, base, periods, operationKinds: [...kinds], subscriptions, operations: sorted, checkAt: new Date(latePhase + HOUR) };
}
