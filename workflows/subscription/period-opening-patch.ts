/** The patch id of the one-step period opening (./period-opening.ts), importable without the workflow runtime. */
export const PERIOD_OPENS_IN_ONE_STEP = 'period-opens-in-one-local-activity';
