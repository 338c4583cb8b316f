/**
 * Every patch of the subscription workflow, and the generations that release them together.
 *
 * A `patched(id)` that is true records a marker and a TemporalChangeVersion upsert (two history events) in the run
 * that asks, and a run asks wherever the patched code is, often at a period boundary: the busiest moment of a
 * calendar-billed book. So a subscription takes its patches once (./state.ts `patchTaken` carries them to the next
 * run), and a run takes each generation its code knows at its first task, one marker per generation, and every
 * patch in it with none (./state.ts `takeReleasedPatches`).
 */

/** Before this patch a non-retryable activity failure failed the workflow; now it waits for ops (./attention.ts). */
export const NEEDS_ATTENTION = 'needs-attention-on-deterministic-failure';

/** Lifecycle updates wait their turn (./turns.ts); histories recorded before ran them side by side. */
export const SERIALIZED_LIFECYCLE_UPDATES = 'serialized-lifecycle-updates';

/** The main loop waits for running handlers (./turns.ts); histories recorded before did not. */
export const MAIN_LOOP_AFTER_HANDLERS = 'main-loop-acts-after-running-handlers';

/** A plan change is keyed by its request (./lifecycle.ts); histories recorded before have no such first step. */
export const PLAN_CHANGE_KEYED_BY_REQUEST = 'plan-change-keyed-by-request';

/** Threshold invoices (./thresholds.ts); histories recorded before never asked for one. */
export const PROGRESSIVE_BILLING = 'progressive-billing-thresholds';

/** The period's first charge as a local activity, the period end handed on at continue-as-new (./state.ts). */
export const CHEAPER_PERIOD_STEP = 'cheaper-period-step';

/** The one-step period opening (./period-opening.ts). */
export const PERIOD_OPENS_IN_ONE_STEP = 'period-opens-in-one-local-activity';

/** Two periods per run (./state.ts `nextPeriodInThisRun`). */
export const PERIODS_SHARE_A_RUN = 'periods-share-a-run';

/**
 * A plan change at period end to another billing interval restarts the calendar (./state.ts `restartCalendar`).
 * Released by no generation yet: asked only where such a change takes effect, so no other run pays its marker.
 */
export const NEW_INTERVAL_RESTARTS_CALENDAR = 'new-interval-restarts-calendar';

/**
 * A retention offer open at the period's end holds the handover to the next period until it is answered or expires
 * (../subscription.ts `serveUntilPeriodEnd`). Like the patch above, asked only where it applies.
 */
export const RETENTION_OFFER_HOLDS_PERIOD_END = 'retention-offer-holds-period-end';

/**
 * An invoice declined while another is in dunning waits its turn instead of replacing it (./collection.ts). Like
 * the patches above, asked only where it applies.
 */
export const DECLINED_INVOICES_WAIT_THEIR_TURN = 'declined-invoices-wait-their-turn';

/**
 * A suspension paid moves the calendar on by the time suspended, as a resume after a pause does (./collection.ts).
 * Like the patches above, asked only where it applies.
 */
export const SUSPENDED_TIME_IS_NOT_BILLED = 'suspended-time-is-not-billed';

/**
 * A cancellation now accepted while the main loop's last step of a period ran past its end (a threshold invoice's
 * charge) ends the subscription instead of being dropped at the handover (../subscription.ts). Like the patches
 * above, asked only where it applies.
 */
export const CANCEL_NOW_AT_HANDOVER_TAKES_EFFECT = 'cancel-now-at-handover-takes-effect';

/**
 * Paying the invoice in dunning returns a subscription with a cancellation at period end to `pending_cancellation`,
 * not `active` (./collection.ts). Like the patches above, asked only where it applies.
 */
export const PAID_KEEPS_PENDING_CANCELLATION = 'paid-keeps-pending-cancellation';

/**
 * A pause whose turn comes while a threshold invoice's first charge runs waits for that charge's answer
 * (./thresholds.ts `afterThresholdCharge`). Asked only there: histories recorded before ran the pause beside the charge.
 */
export const PAUSE_WAITS_FOR_THRESHOLD_CHARGE = 'pause-waits-for-threshold-charge';

/**
 * A payment method replaced while dunning's last scheduled attempt was at the gateway gets one more attempt before the
 * plan's final step (./collection.ts `attemptWithNewPaymentMethod`). Asked only where such a method arrived.
 */
export const NEW_PAYMENT_METHOD_AFTER_LAST_RETRY = 'new-payment-method-after-last-retry';

/**
 * The same after the end: an invoice dunned after the subscription ended gets one more attempt with a payment method
 * replaced during its last one, before it is marked uncollectible (./collection.ts `retriedUntilPaid`). Not the patch
 * above: a run that took it already (in its own dunning, or carried from an earlier run) would take it here too, on
 * replay of histories recorded before, where the invoice was marked uncollectible. Asked only where such a method arrived.
 */
export const NEW_PAYMENT_METHOD_AFTER_THE_END = 'new-payment-method-after-last-retry-after-the-end';

/**
 * A payment method replaced while the last attempt was at the gateway, whose wake-up had not reached the workflow when
 * it acted on the decline: dunning's final mark leaves the invoice open and one more attempt charges that method
 * (./collection.ts `markUncollectibleUnlessNewPaymentMethod`). Asked only where the mark answers so: histories
 * recorded before have no such answer.
 */
export const NEW_PAYMENT_METHOD_AT_THE_FINAL_MARK = 'new-payment-method-at-the-final-mark';

/**
 * An invoice declined for good (an expired card) while another was in dunning is dunned on the plan's schedule when
 * its turn comes after that one was paid (./collection.ts `retryableInTurn`): a payment method pays now. Before, it
 * went straight to the plan's final step (suspended again, or marked uncollectible after the end) with the card that
 * had just paid on file, never tried. Asked only where such an invoice's turn comes after a payment.
 */
export const DECLINED_FOR_GOOD_RETRIED_AFTER_PAYMENT = 'declined-for-good-retried-after-payment';

/**
 * A cancellation now that ends dunning after its schedule (during the last attempt, the new card's extra attempt, or
 * a suspension) leaves in `run.dunning` the last attempt made (./collection.ts `keepAttemptsAfterTheSchedule`), so the
 * dunning after the end goes on from there. Before, it restarted at the schedule's last step: it "retried" an attempt
 * already made (its recorded decline, no charge), spending a new card's wake-up on it (the invoice marked
 * uncollectible, that card never tried), or announced it for 7 days later. Asked only where such a cancellation came.
 */
export const ATTEMPTS_AFTER_THE_SCHEDULE_KEPT = 'attempts-after-the-schedule-kept';

/**
 * The invoices a subscription leaves unpaid when it ends (a declined closing invoice, or one in dunning when the
 * customer canceled now) are dunned in turn on the plan's schedule, then marked uncollectible (./collection.ts
 * `collectAfterTheEnd`). Before, they stayed open for good. Like the patches above, asked only where it applies.
 */
export const UNPAID_INVOICES_COLLECTED_AFTER_THE_END = 'unpaid-invoices-collected-after-the-end';

/**
 * Where the usage stops is recorded as soon as the end is decided (./lifecycle.ts `endSubscription`), and a
 * cancellation at the period's end accepted after that end bills usage up to its acceptance (./transitions.ts
 * `acceptCancellation`). Before, ingestion accepted usage stamped after a cancellation now until the closing invoice,
 * and usage served while the end was held, which no invoice billed. Like the patches above, asked only where it applies.
 */
export const USAGE_END_RECORDED_WHEN_DECIDED = 'usage-end-recorded-when-decided';

/**
 * A cancellation at the period's end accepted while that period is being opened (its grace window) records the end it
 * answered (./transitions.ts `acceptCancellation`). Before, the row still showed the closed period until the period's
 * invoice, and ingestion refused the new period's usage as after the end. Asked only where it applies.
 */
export const PERIOD_END_CANCELLATION_RECORDED_WHILE_OPENING = 'period-end-cancellation-recorded-while-opening';

/**
 * A cancellation at the period's end accepted less than the clock skew ingestion allows (MAX_CLOCK_SKEW_MS) before
 * that end records the end it answered (./transitions.ts `acceptCancellation`), so the closing close also claims the
 * usage accepted before it but stamped just past the end. Before, that usage was claimed by no close. Asked only then.
 */
export const PERIOD_END_CANCELLATION_RECORDED_NEAR_THE_END = 'period-end-cancellation-recorded-near-the-end';

/**
 * A plan change accepted before the period opened but whose turn came while the period's due scheduled change was
 * being applied is refused (period_opening), as the validator refuses one that arrives then (./lifecycle.ts
 * `applyingScheduledChange`). Before, an immediate one prorated from the plan before the scheduled one and a
 * period-end one was dropped. Like the patches above, asked only where it applies.
 */
export const PLAN_CHANGE_WAITS_FOR_SCHEDULED_CHANGE = 'plan-change-waits-for-scheduled-change';

/**
 * A new payment method's wake-up is forgotten once no dunning waits for it: when the invoice in dunning is paid, and
 * before a first charge made outside dunning (./collection.ts `settleDunning`, `collect`). Before, the stale wake-up
 * made the next dunning's first retry at once, before its announced time. Like the patches above, asked only where
 * it applies.
 */
export const STALE_PAYMENT_METHOD_WAKE_FORGOTTEN = 'stale-payment-method-wake-forgotten';

/**
 * An invoice whose total is negative (a credit larger than what it bills) is paid back: refunded to the payment of
 * the subscription's latest paid invoice that covers it (./collection.ts `collect`, store/credit-total-refunds.ts).
 * Before, the credit was noted and nothing paid it. Asked only where a credit total is issued.
 */
export const CREDIT_TOTAL_REFUNDED = 'credit-total-refunded';
/**
 * A cancellation now while an invoice is past due credits the period's unused time, as any cancellation now does
 * (../subscription.ts `unusedTimeAfterDunning`). Before, none was given. Asked only where it applies: a plan that
 * credits unused time, canceled now during dunning.
 */
export const CANCEL_NOW_IN_DUNNING_CREDITS_UNUSED_TIME = 'cancel-now-in-dunning-credits-unused-time';

/**
 * The closed period's usage waits out the grace window of the plan it is rated under, not that of the plan a
 * scheduled change switches to at the boundary (./period.ts). Asked only where the two windows differ.
 */
export const CLOSED_PERIOD_KEEPS_ITS_GRACE = 'closed-period-keeps-its-grace';

/**
 * A period's usage stretch is opened before its status is recorded (an immediate change may run during that
 * await: ./period.ts). Asked only where the status changes as a period opens (a trial's end, a start, a win-back).
 */
export const STRETCH_OPENED_BEFORE_STATUS = 'stretch-opened-before-status';

/**
 * A win-back acceptance admitted before the offer expired restarts the subscription even when the expiry timer fires
 * while its answer is being recorded (./offers.ts). Asked only where a win-back offer was recorded.
 */
export const WIN_BACK_ANSWER_IN_FLIGHT_WINS = 'win-back-answer-in-flight-wins';

/**
 * A cancellation now takes effect when it is accepted: its usage end is recorded before the answer, and the main
 * loop ends the subscription there even when it gets to it later (the grace window of the period that just closed).
 * Asked where a cancellation now is accepted with usage open, and where the loop gets to one later.
 */
export const CANCEL_NOW_TAKES_EFFECT_WHEN_ACCEPTED = 'cancel-now-takes-effect-when-accepted';

/**
 * Nothing a run holds for the customer is dropped when it hands over (../subscription.ts): an open retention offer,
 * a pause, and mid-period the last invoice and a pending spending or threshold check go to the next run in its
 * carried state (./state.ts `heldAtHandover`), and what a handler that finished during the handover left to serve (a
 * declined invoice, an offer, a pause) is served by this run first. Before, a handover suggested by the server
 * mid-period dropped an open offer (the answer refused, the cancellation lost) and a pause's start and end (a pause
 * "until" never ended; a resume failed every workflow task), and a plan change's declined invoice was never dunned.
 * Asked only where one of them is there to keep.
 */
export const HANDOVER_KEEPS_RUN_STATE = 'handover-keeps-run-state';

/**
 * A resume (or a paid suspension) moves the current period's end by exactly the time given back, and the calendar
 * restarts there: the moved end is the anchor of the periods after it (./transitions.ts `moveCalendarBy`). Before,
 * the anchor moved by that time as an instant and the period was placed again from it with month-end clamping, so
 * its end moved by days more or less (30 days paused in January: the next fee on Feb 28 instead of Mar 3). Asked
 * only where the two calendars differ (never for a calendar of days, weeks or clock time).
 */
export const PAUSED_TIME_GIVEN_BACK_EXACTLY = 'paused-time-given-back-exactly';

/**
 * A plan change before the first period (status `scheduled` or `trialing`: nothing billed yet) switches the plan the
 * first period bills, now or "at period end" alike, and the trial goes on to its end unchanged (./lifecycle.ts
 * `changePlanBeforeFirstPeriod`); the first run waits for such a switch in flight before it places the first period.
 * Before, it was refused with subscription_not_active. Asked only where such a change takes its turn.
 */
export const PLAN_CHANGE_BEFORE_FIRST_PERIOD = 'plan-change-before-first-period';

export interface PatchGeneration {
  readonly id: string;
  readonly patches: readonly string[];
}

/**
 * Released generations, oldest first, each naming only the patches it released. NEVER edit a released generation:
 * a history recorded under it replays with exactly its list, so a patch added to it later would be taken, on
 * replay, by runs recorded without that patch. New patches go into a new generation at the end of this list.
 * Each generation keeps its own marker (not one cumulative marker for all): code rolled back to the release before
 * still finds the markers of the generations it knows in the histories the newer code recorded, and diverges only
 * where a newer patch changed what the run did, as without generations.
 * test/unit/patch-generations.test.ts holds a copy of each released list and fails when one changes.
 */
export const PATCH_GENERATIONS: readonly PatchGeneration[] = [
  {
    id: 'subscription-patches-1',
    patches: [
      NEEDS_ATTENTION,
      SERIALIZED_LIFECYCLE_UPDATES,
      MAIN_LOOP_AFTER_HANDLERS,
      PLAN_CHANGE_KEYED_BY_REQUEST,
      PROGRESSIVE_BILLING,
      CHEAPER_PERIOD_STEP,
      PERIOD_OPENS_IN_ONE_STEP,
      PERIODS_SHARE_A_RUN,
    ],
  },
];
