/**
 * The plan's per-period credit bucket as a `plan_included` wallet grant (issue 12, docs/wallets.md).
 *
 * Rating still applies the bucket (the invoice's "Included usage credit" line is computed exactly as before); this
 * module only records it in the customer's wallet, in the invoice's own transaction: the grant (in effect from the
 * period start, expiring at its end), its consumption (exactly what the bucket line covered) and the expiry of the
 * unused rest. The grant is spent or expired in the same transaction that creates it, so no later draw, top-up
 * or expiry run can ever see anything left of it: the invoices stay what they were and the balance nets to zero.
 */
import { Dec, toDecimal, ZERO } from '../domain/money';
import type { Transaction } from './transactions';
import type { Knex } from 'knex';
import { appendEntries, ensureWallet, GrantRow, lockWallet, NewEntry, WalletRow } from './wallets';

export interface PlanIncludedCredit {
  readonly customerId: string;
  readonly currency: string;
  readonly subscriptionId: string;
  /** The usage period the bucket belongs to: the grant is in effect during it and expires at its end. */
  readonly period: { readonly start: string; readonly end: string };
  /** The plan's bucket for the period (decimal string). */
  readonly bucket: string;
  /** What the invoice's credit-bucket line covered (a positive decimal string, at most the bucket). */
  readonly applied: string;
}

/** The grant key: one plan_included grant per subscription and usage period, however often the invoice is built. */
export function planIncludedGrantKey(subscriptionId: string, periodStart: string): string {
  return `plan_included:${subscriptionId}:${new Date(periodStart).toISOString()}`;
}

/**
 * Records the bucket of one usage period as a plan_included grant, its consumption and the expiry of the rest;
 * once per (subscription, usage period). A plan without a bucket records nothing (and creates no wallet).
 */
export async function recordPlanIncludedCredit(trx: Transaction, credit: PlanIncludedCredit): Promise<GrantRow | null> {
  const bucket = toDecimal(credit.bucket);
  if (bucket.lte(ZERO)) return null;
  const applied = Dec.min(Dec.max(toDecimal(credit.applied), ZERO), bucket);
  const wallet = await lockWallet(trx, (await ensureWallet(trx, credit.customerId, credit.currency)).id);
  const grantKey = planIncludedGrantKey(credit.subscriptionId, credit.period.start);
  const existing = await trx<GrantRow>('wallet_grants').where({ wallet_id: wallet.id, grant_key: grantKey }).first();
  if (existing) return existing;
  // Nothing is left of it once this transaction commits: never drawn by the wallet, never repays an overdraft.
  const [grant] = await trx<GrantRow>('wallet_grants')
    .insert({
      wallet_id: wallet.id,
      grant_key: grantKey,
      source: 'plan_included',
      amount: bucket.toString(),
      remaining: '0',
      priority: 0,
      effective_at: new Date(credit.period.start),
      expires_at: new Date(credit.period.end),
      metric_codes: null,
    })
    .returning('*');
  const span = `usage ${credit.period.start.slice(0, 10)} to ${credit.period.end.slice(0, 10)}`;
  const unused = bucket.minus(applied);
  const entries: NewEntry[] = [{ kind: 'grant', entryKey: `grant:${grantKey}`, grantId: grant.id, amount: bucket, description: `plan_included credit, ${span}` }];
  if (applied.gt(ZERO)) entries.push({ kind: 'consumption', entryKey: `consume:${grantKey}`, grantId: grant.id, amount: applied.neg(), description: `Included usage credit, ${span}` });
  if (unused.gt(ZERO)) entries.push({ kind: 'expiry', entryKey: `expire:${grant.id}`, grantId: grant.id, amount: unused.neg(), description: 'plan_included credit expired' });
  await appendEntries(trx, wallet, entries);
  return grant;
}

/**
 * Whether the wallet holds credit of the customer's own: a grant other than the plan's included credit, a balance,
 * an overdraft or recharge setting. A wallet that has only ever recorded the plan's bucket is history (the usage
 * page already shows the bucket as "credit left"), so the page hides its wallet section for it.
 */
export async function holdsOwnCredit(db: Knex | Knex.Transaction, wallet: WalletRow): Promise<boolean> {
  const settings = [wallet.low_balance_threshold, wallet.recharge_threshold, wallet.recharge_amount];
  if (!toDecimal(String(wallet.balance)).isZero() || toDecimal(String(wallet.overdraft_limit)).gt(ZERO) || settings.some((value) => value !== null)) return true;
  return (await db('wallet_grants').where({ wallet_id: wallet.id }).whereNot({ source: 'plan_included' }).first('id')) !== undefined;
}
