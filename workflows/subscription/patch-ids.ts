/**
 * Patch ids that code outside the workflow runtime names too: the bench and the import start subscriptions as
 * carried from a run on this code, which took these patches once already.
 */

/** The one-step period opening (./period-opening.ts). */
export const PERIOD_OPENS_IN_ONE_STEP = 'period-opens-in-one-local-activity';

/** Two periods per run (./state.ts `nextPeriodInThisRun`). */
export const PERIODS_SHARE_A_RUN = 'periods-share-a-run';
