/**
 * Prepaid credit (issue 12, docs/wallets.md):
 *
 *   GET  /v1/customers/:id/wallet?currency=USD   balance, available now, grants with expiries, recent ledger, run-out date
 *   PUT  /v1/customers/:id/wallet                overdraft limit, low-balance and auto-recharge thresholds
 *   POST /v1/customers/:id/wallet/grants         a promotional, goodwill or purchased (paid elsewhere) grant
 */
import { randomUUID } from 'node:crypto';
import type { Request, Router } from 'express';
import { z } from 'zod';
import { formatMoney, minorUnitExponent, toDecimal } from '../../domain/money';
import { projectedRunOut } from '../../domain/wallet';
import { findMetricsByCode } from '../../store/catalog';
import { CustomerRow, findCustomer } from '../../store/customers';
import { holdsOwnCredit } from '../../store/plan-included-credits';
import type { Database } from '../../store/database';
import { createGrant, ensureWallet, findWallet, WalletBalanceLimitError, GrantRow, LedgerRow, listGrants, MAX_WALLET_BALANCE, NewGrant, pendingUsageCost, recentLedger, updateWalletSettings, WalletRow } from '../../store/wallets';
import { keyNamesAnotherRequest, scopedRequestId, uuidFromRequestId } from '../idempotency';
import { ApiProblem } from '../problem';
import { declareRoutes } from '../route-declarations';
import { currencyCode, freeText, instant, instantWithinTenYears, isoDuration, nonNegativeDecimal, positiveDecimal, uuidParam } from '../schemas';
import { ownCustomer } from './entitlements';
import { grantExpiryNoticeOf, updateGrantExpiryNotice } from '../../store/wallet-topups';

export const walletQuery = z.strictObject({ currency: currencyCode.optional() });

export const grantBody = z.strictObject({
  currency: currencyCode.optional(),
  // Greater than zero, as a top-up's: a grant of "0" wrote a grant and a ledger entry that could pay nothing, and
  // turned the customer's `has_wallet` true.
  amount: positiveDecimal,
  source: z.enum(['promotional', 'goodwill', 'purchased']),
  priority: z.int().min(0).max(1000).default(0),
  // Years 0001-9999 in UTC (api/schemas.ts instant): a grant effective in year 0 or expiring in year 10000 was stored,
  // then answered and woken for as "0000-...", "-000001-..." or "+010000-...". Effective at most ten years ahead (a
  // credit no one can draw for centuries is a typo); an expiry may lie far ahead ("2099": practically never).
  effective_at: instantWithinTenYears.optional(),
  expires_at: instant.nullable().optional(),
  metric_codes: z.array(z.string().min(1).max(100)).min(1).max(50).nullable().optional(),
  description: freeText(500).optional(),
});

export const settingsBody = z.strictObject({
  currency: currencyCode.optional(),
  overdraft_limit: nonNegativeDecimal.optional(),
  low_balance_threshold: nonNegativeDecimal.nullable().optional(),
  recharge_threshold: nonNegativeDecimal.nullable().optional(),
  recharge_amount: nonNegativeDecimal.nullable().optional(),
  /** How long before a grant expires `grant.expiring` is sent (ISO 8601 duration, e.g. P7D, PT12H). */
  // At most ten years (isoDuration, as billing intervals): an unbounded one (P99999999999999999999Y) was stored, and
  // its notice time (expiry minus it) is no date at all, so every grant's `grant.expiring` went out at once.
  // (Wrapped in a refine: the published schema of this field stays a plain string.)
  grant_expiry_notice: z
    .string()
    .refine((value) => isoDuration.safeParse(value).success, { message: 'an ISO 8601 duration of at most ten years, such as P7D' })
    .optional(),
});

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

function money(value: string | null, currency: string): string | null {
  return value === null ? null : formatMoney(toDecimal(String(value)), currency);
}

export function grantJson(row: GrantRow, currency: string) {
  return {
    id: row.id,
    source: row.source,
    amount: money(row.amount, currency),
    remaining: money(row.remaining, currency),
    priority: row.priority,
    effective_at: iso(row.effective_at),
    expires_at: iso(row.expires_at),
    metric_codes: row.metric_codes,
  };
}

export function ledgerJson(row: LedgerRow, currency: string) {
  return {
    id: String(row.id),
    kind: row.kind,
    grant_id: row.grant_id,
    amount: money(row.amount, currency),
    balance_after: money(row.balance_after, currency),
    description: row.description,
    created_at: iso(row.created_at),
  };
}

function walletSettingsJson(wallet: WalletRow) {
  const currency = wallet.currency;
  return {
    overdraft_limit: money(wallet.overdraft_limit, currency),
    low_balance_threshold: money(wallet.low_balance_threshold, currency),
    recharge_threshold: money(wallet.recharge_threshold, currency),
    recharge_amount: money(wallet.recharge_amount, currency),
  };
}

/**
 * The currency a wallet write names: the customer's. Every subscription's plan bills in the customer's currency
 * (currency_mismatch otherwise), so every invoice a wallet could pay does too: credit in another currency could pay
 * nothing, ever, yet a top-up there was charged, a grant given, and auto-recharge set on that empty wallet bought its
 * amount at once. Reading another currency's wallet (GET ?currency=) is still allowed: it is empty.
 */
export function walletCurrency(customer: Pick<CustomerRow, 'currency'>, asked: string | undefined): string {
  if (asked === undefined || asked === customer.currency) return customer.currency;
  throw new ApiProblem('validation_failed', `the customer is billed in ${customer.currency}: credit in ${asked} could pay no invoice`, [
    { path: 'currency', message: `must be the customer's currency ${customer.currency} (or left out)` },
  ]);
}

function checkMinorUnits(currency: string, values: Record<string, string | null | undefined>): void {
  for (const [field, value] of Object.entries(values)) {
    if (value && toDecimal(value).decimalPlaces() > minorUnitExponent(currency)) {
      throw new ApiProblem('validation_failed', `${field} has more decimals than ${currency} allows`, [{ path: field, message: `must have at most ${minorUnitExponent(currency)} decimals in ${currency}` }]);
    }
  }
}

/**
 * A grant scoped to metrics pays only their usage (domain/wallet.ts): a code naming no billable metric (a typo,
 * "Tokens" for `tokens`) made a grant nothing could ever draw on, shown in the balance until it expired (for a
 * purchased grant, money paid and lost). Refused before anything is written.
 */
async function checkMetricCodes(db: Database, codes: readonly string[] | null): Promise<void> {
  if (!codes) return;
  const known = new Set((await findMetricsByCode(db, codes)).map((metric) => metric.code));
  const errors = codes.flatMap((code, index) => (known.has(code) ? [] : [{ path: `metric_codes.${index}`, message: `no billable metric ${JSON.stringify(code)}` }]));
  if (errors.length) throw new ApiProblem('validation_failed', `${errors.length} unknown metric code(s) in metric_codes`, errors);
}

/** Auto-recharge needs both a threshold and a positive amount (after this request's changes); nothing is written otherwise. */
function checkRechargeSettings(current: WalletRow | undefined, body: z.infer<typeof settingsBody>): void {
  const threshold = body.recharge_threshold !== undefined ? body.recharge_threshold : (current?.recharge_threshold ?? null);
  const amount = body.recharge_amount !== undefined ? body.recharge_amount : (current?.recharge_amount ?? null);
  if (threshold !== null && (amount === null || toDecimal(String(amount)).lte(0))) {
    throw new ApiProblem('recharge_settings_incomplete', 'auto-recharge needs recharge_amount greater than zero with recharge_threshold');
  }
}

/** The wallet as the customer sees it: what the usage page shows (docs/usage-page.md). */
export async function walletView(db: Database, wallet: WalletRow, now: Date) {
  const currency = wallet.currency;
  const [grants, ledger, pending] = await Promise.all([listGrants(db, wallet.id), recentLedger(db, wallet.id, 20), pendingUsageCost(db, wallet.customer_id, currency)]);
  const available = toDecimal(String(wallet.balance)).minus(pending.cost);
  const runOut = pending.since ? projectedRunOut(available.toString(), pending.cost.toString(), now.getTime() - pending.since.getTime(), now) : null;
  return {
    customer_id: wallet.customer_id,
    currency,
    balance: money(wallet.balance, currency),
    pending_usage: formatMoney(pending.cost, currency),
    available: formatMoney(available, currency),
    ...walletSettingsJson(wallet),
    projected_run_out_at: iso(runOut),
    grants: grants.filter((grant) => toDecimal(String(grant.remaining)).gt(0)).map((grant) => grantJson(grant, currency)),
    ledger: ledger.map((entry) => ledgerJson(entry, currency)),
  };
}

const apiKeyIdOf = (req: Request): string | undefined => (req as Request & { apiKey?: { id: string } }).apiKey?.id;

/** The metrics a grant pays for, as a comparable set: null (any usage) stays null; the order and repeats do not matter. */
const metricSet = (codes: readonly string[] | null | undefined): string | null => (codes ? JSON.stringify([...new Set(codes)].sort()) : null);

/**
 * Whether an existing grant is the one this request asks for (a retry), not another one under the same key. Every
 * term of the grant the request names counts: what it pays for (metric_codes) and, when named, when it starts. A
 * request for a grant paying any usage took a grant scoped to `tokens` under its key for itself (201, and the credit
 * asked for was never granted).
 */
function sameGrant(
  grant: GrantRow,
  asked: { amount: string; source: string; priority: number; expiresAt: Date | null; metricCodes: readonly string[] | null; effectiveAt: Date | null },
): boolean {
  const expiry = grant.expires_at ? new Date(grant.expires_at).getTime() : null;
  return (
    toDecimal(String(grant.amount)).eq(toDecimal(asked.amount)) &&
    grant.source === asked.source &&
    grant.priority === asked.priority &&
    expiry === (asked.expiresAt ? asked.expiresAt.getTime() : null) &&
    metricSet(grant.metric_codes) === metricSet(asked.metricCodes) &&
    // Without effective_at the grant starts when the request first ran: a retry cannot name that moment.
    (asked.effectiveAt === null || new Date(grant.effective_at).getTime() === asked.effectiveAt.getTime())
  );
}

export function walletsRouter(db: Database, options: { now?: () => Date; onWalletChanged?: (customerId: string) => Promise<void> } = {}): Router {
  const routes = declareRoutes();
  const now = options.now ?? (() => new Date());

  /** createGrant, its balance-limit refusal under the wallet lock (two grants racing for the last room) a 422. */
  async function createGrantOrRefuse(grant: NewGrant) {
    try {
      return await createGrant(db, grant);
    } catch (error) {
      if (error instanceof WalletBalanceLimitError) throw new ApiProblem('validation_failed', `amount would take the ${grant.currency} wallet's balance past ${MAX_WALLET_BALANCE.toFixed(0)}`);
      throw error;
    }
  }

  async function customerOr404(id: string) {
    const parsed = uuidParam.safeParse(id);
    const customer = parsed.success ? await findCustomer(db, parsed.data) : undefined;
    if (!customer) throw new ApiProblem('customer_not_found', `no customer ${id}`);
    return customer;
  }

  routes.get('/:id/wallet', { allow: ['app', 'finance', 'customer_usage'], customerScope: ownCustomer }, async (req, res) => {
    const query = walletQuery.parse(req.query);
    const customer = await customerOr404(req.params.id);
    const currency = query.currency ?? customer.currency;
    const wallet = await findWallet(db, customer.id, currency);
    res.setHeader('Cache-Control', 'no-store');
    // No wallet yet is an empty one, not an error: the usage page asks for every customer.
    if (!wallet) {
      res.json({ customer_id: customer.id, currency, has_wallet: false, balance: money('0', currency), pending_usage: money('0', currency), available: money('0', currency), projected_run_out_at: null, grants: [], ledger: [] });
      return;
    }
    // A wallet that only records the plan's included credit is no wallet to the customer (docs/wallets.md).
    res.json({ has_wallet: await holdsOwnCredit(db, wallet), ...(await walletView(db, wallet, now())) });
  });

  routes.put('/:id/wallet', { allow: ['app'] }, async (req, res) => {
    const body = settingsBody.parse(req.body);
    const customer = await customerOr404(req.params.id);
    const currency = walletCurrency(customer, body.currency);
    // Every setting is money in the wallet's currency: a threshold with more digits was stored as given and answered
    // (and put in `wallet.low_balance`) rounded, so 1.4 JPY read "1" while a balance of 1 JPY counted as below it.
    checkMinorUnits(currency, {
      overdraft_limit: body.overdraft_limit,
      low_balance_threshold: body.low_balance_threshold,
      recharge_threshold: body.recharge_threshold,
      recharge_amount: body.recharge_amount,
    });
    checkRechargeSettings(await findWallet(db, customer.id, currency), body);
    // A recharge is bought only when its credit fits the balance (store/wallet-topups.ts): one larger than any balance
    // would never be bought, silently.
    if (body.recharge_amount && toDecimal(body.recharge_amount).gt(MAX_WALLET_BALANCE)) {
      throw new ApiProblem('validation_failed', `recharge_amount is more than a wallet holds (${MAX_WALLET_BALANCE.toFixed(0)})`, [{ path: 'recharge_amount', message: `must be at most ${MAX_WALLET_BALANCE.toFixed(0)}` }]);
    }
    const wallet = await ensureWallet(db, customer.id, currency);
    const settings = {
      overdraftLimit: body.overdraft_limit,
      lowBalanceThreshold: body.low_balance_threshold,
      rechargeThreshold: body.recharge_threshold,
      rechargeAmount: body.recharge_amount,
    };
    // A request that sets only the expiry notice changes no column of these.
    const updated = Object.values(settings).some((value) => value !== undefined) ? await updateWalletSettings(db, wallet.id, settings) : wallet;
    if (body.grant_expiry_notice !== undefined) await updateGrantExpiryNotice(db, wallet.id, body.grant_expiry_notice);
    await options.onWalletChanged?.(customer.id); // thresholds may be crossed now; expiry notices move
    res.json({ customer_id: customer.id, currency, ...walletSettingsJson(updated), grant_expiry_notice: await grantExpiryNoticeOf(db, wallet.id) });
  });

  routes.post('/:id/wallet/grants', { allow: ['finance'] }, async (req, res) => {
    const body = grantBody.parse(req.body);
    const customer = await customerOr404(req.params.id);
    const currency = walletCurrency(customer, body.currency);
    checkMinorUnits(currency, { amount: body.amount });
    await checkMetricCodes(db, body.metric_codes ?? null);
    const effectiveAt = body.effective_at ? new Date(body.effective_at) : now();
    const expiresAt = body.expires_at ? new Date(body.expires_at) : null;
    // An expiry already passed (as a top-up's): the grant was written, then expired by the wallet's next timer run,
    // credit shown for a moment and gone (for a purchased grant, paid elsewhere, the money lost).
    if (expiresAt && expiresAt <= now()) throw new ApiProblem('validation_failed', 'expires_at must be in the future', [{ path: 'expires_at', message: 'must be in the future' }]);
    if (expiresAt && expiresAt <= effectiveAt) throw new ApiProblem('validation_failed', 'expires_at must be after effective_at', [{ path: 'expires_at', message: 'must be after effective_at' }]);
    // Room under MAX_WALLET_BALANCE beside the purchases still pending (charged before they are granted; a grant that
    // took their room left a paid top-up whose grant could never be written) is checked by createGrant under the
    // wallet lock, after it looked for this request's grant: checked before, two grants racing for the last room both
    // passed (a 500 on numeric overflow), and a retry of a grant already made was refused once the wallet was full.
    // The grant's identity comes from the request (as a top-up's does): a retry whose first run committed but whose
    // answer was never stored (a crash, a lost response write: the key's claim goes stale or is given back) runs the
    // route again, and a random key granted the credit a second time. Without an Idempotency-Key, a new grant.
    const requestId = scopedRequestId(apiKeyIdOf(req), 'wallet-grant', req.header('Idempotency-Key'));
    const { grant, created } = await createGrantOrRefuse({
      customerId: customer.id,
      currency,
      grantKey: `api:${requestId ? uuidFromRequestId(requestId) : randomUUID()}`,
      source: body.source,
      amount: body.amount,
      priority: body.priority,
      effectiveAt,
      expiresAt,
      metricCodes: body.metric_codes ?? null,
      description: body.description,
      withinBalanceLimit: true,
    });
    const asked = { amount: body.amount, source: body.source, priority: body.priority, expiresAt, metricCodes: body.metric_codes ?? null, effectiveAt: body.effective_at ? effectiveAt : null };
    if (!created && !sameGrant(grant, asked)) {
      throw keyNamesAnotherRequest(req.header('Idempotency-Key'), `grant ${grant.id} of another amount, source, priority, expiry, start or metrics`);
    }
    await options.onWalletChanged?.(customer.id); // the wallet workflow sets its timer for this grant's expiry
    res.status(201).json(grantJson(grant, currency));
  });

  return routes.router;
}
