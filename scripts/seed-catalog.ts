import { insertPlanVersionUnlessExists } from '../store/bulk-fixtures';
import type { Database } from '../store/database';

/** The demo catalog `npm start` installs: a monthly plan with a trial, and a one-minute plan to watch cycle. */
export const DEMO_PLANS = [
  {
    code: 'starter-monthly',
    name: 'Starter (monthly)',
    currency: 'USD',
    billing_interval: 'P1M',
    trial_period: 'P14D',
    flat_fee: '29.00',
  },
  {
    code: 'demo-minute',
    name: 'Demo (one-minute periods)',
    currency: 'USD',
    billing_interval: 'PT1M',
    trial_period: null,
    flat_fee: '1.00',
  },
] as const;

/** Idempotent: publishes version 1 of each demo plan that does not exist yet and leaves existing ones alone. */
export async function seedDemoCatalog(db: Database): Promise<string[]> {
  const created: string[] = [];
  for (const plan of DEMO_PLANS) {
    if (await insertPlanVersionUnlessExists(db, { ...plan, version: 1 })) created.push(plan.code);
  }
  return created;
}
