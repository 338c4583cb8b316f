/**
 * The workflows' handles on the activities, typed by the contract (type-only: no activity code is bundled).
 */
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { BillingActivities } from '../contract/activities';

const RETRY = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' } as const;

// Short, idempotent Postgres transactions run as local activities: one marker event each instead of three
// events plus a workflow task, which keeps a period's history within its budget (about 25 events).
export const local = proxyLocalActivities<BillingActivities>({ startToCloseTimeout: '30 seconds', retry: RETRY });

// Payment-gateway calls (slow, may lose their answer) are regular activities, each its own visible step, retried
// without limit because they are idempotent per (invoice, attempt) or per refund.
export const remote = proxyActivities<BillingActivities>({ startToCloseTimeout: '1 minute', retry: RETRY });
