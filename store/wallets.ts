/**
 * Wallets, grants and the append-only ledger (issue 12, docs/wallets.md). Every change to a balance is a ledger
 * entry written with the new balance in one transaction, the wallet row locked, so the balance is always the
 * ledger's running sum. Entry keys make each change idempotent: a retried activity finds what it already wrote.
 */
import { stretchAllowances } from '../domain/allowances';
import type { Knex } from 'knex';
import { Dec, formatMoney, toDecimal, ZERO } from '../domain/money';
import type { Charge } from '../domain/rating';
import { rateDimensionalUsage } from '../domain/dimensions';
import { billedByThresholds, usageThresholdsOf } from '../domain/progressive-billing';
import { CreditCharge, CreditDraw, drawCredits, drawCreditsByLine, GrantSource, GrantState, LineDraw, lineGiveBacks, LoweredLine, UsageSpan } from '../domain/wallet';
import { asLineDraws, DRAW_PART, drawLineRows, recordDrawLines } from './wallet-draw-lines';
import { allowanceShareOf, closureAllowanceShare, openStretchOf } from './plan-changes';
import { billedThresholds, listThresholdInvoices, thresholdBilledUsage } from './threshold-invoices';
import { billedPastShownEnd, openUsageForCharges } from './usage-preview';
import { feeLinesOfPeriodInvoice, previewedRetentionDiscount } from './offers';
import { keptAfterDiscounts, walletPayableCharges } from '../domain/wallet-invoice';
import { DraftInvoiceLine, ratedLinesForPeriod } from '../domain/invoice';
import { usageForCharges } from './usage';
import type { PlanRow } from './catalog';
import { pendingReversalCredits } from './reversal-credits';

type Db = Knex | Knex.Transaction;

/** Text matched literally inside a LIKE pattern (keys may hold `%`, `_` or `\\`). */
const likeEscaped = (text: string): string => text.replace(/[\\%_]/g, '\\$&');

export interface WalletRow {
  id: string;
  customer_id: string;
  currency: string;
  balance: string;
  overdraft_limit: string;
  low_balance_threshold: string | null;
  recharge_threshold: string | null;
  recharge_amount: string | null;
  created_at: Date;
}

export interface GrantRow {
  id: string;
  wallet_id: string;
  grant_key: string;
  source: GrantSource;
  amount: string;
  remaining: string;
  priority: number;
  effective_at: Date;
  expires_at: Date | null;
  metric_codes: string[] | null;
  created_at: Date;
}

/** `refund`: purchased credit taken back by a refund of its top-up invoice (or restored when that refund failed). */
export type LedgerKind = 'grant' | 'consumption' | 'expiry' | 'reversal' | 'overdraft_repayment' | 'refund';

export interface LedgerRow {
  id: string;
  wallet_id: string;
  grant_id: string | null;
  kind: LedgerKind;
  entry_key: string;
  amount: string;
  balance_after: string;
  description: string;
  created_at: Date;
}

/**
 * The largest balance a wallet holds: its NUMERIC(30, 12) columns (balance, balance_after) keep 18 digits before the
 * point. A grant or top-up that would pass it is refused at the edge (api/routes), as Postgres would refuse the
 * ledger entry only later: a 500 for a grant, a paid top-up whose grant can never be written.
 */
export const MAX_WALLET_BALANCE = new Dec('1e18').minus(1);

/** Whether `amount` more credit (and `pending` credit already bought, not granted yet) still fits the wallet. */
export async function creditFits(db: Db, customerId: string, currency: string, amount: string, pending: Dec = ZERO): Promise<boolean> {
  const wallet = await findWallet(db, customerId, currency);
  const balance = wallet ? toDecimal(String(wallet.balance)) : ZERO;
  return Dec.max(balance, ZERO).plus(pending).plus(toDecimal(amount)).lte(MAX_WALLET_BALANCE);
}

/** What the customer's pending purchases in a currency will grant once paid. */
export async function pendingTopUpAmount(db: Db, customerId: string, currency: string): Promise<Dec> {
  const row: { total?: unknown } | undefined = await db('wallet_top_ups').where({ customer_id: customerId, currency, status: 'pending' }).sum({ total: 'amount' }).first();
  return toDecimal(String(row?.total ?? 0));
}

export async function findWallet(db: Db, customerId: string, currency: string): Promise<WalletRow | undefined> {
  return db<WalletRow>('wallets').where({ customer_id: customerId, currency }).first();
}

export interface WalletSettings {
  readonly overdraftLimit?: string;
  readonly lowBalanceThreshold?: string | null;
  readonly rechargeThreshold?: string | null;
  readonly rechargeAmount?: string | null;
}

/** The customer's wallet in a currency, created empty on first use. */
export async function ensureWallet(db: Db, customerId: string, currency: string): Promise<WalletRow> {
  await db('wallets').insert({ customer_id: customerId, currency }).onConflict(['customer_id', 'currency']).ignore();
  return (await findWallet(db, customerId, currency))!;
}

export async function updateWalletSettings(db: Db, walletId: string, settings: WalletSettings): Promise<WalletRow> {
  const changes = {
    ...(settings.overdraftLimit !== undefined ? { overdraft_limit: settings.overdraftLimit } : {}),
    ...(settings.lowBalanceThreshold !== undefined ? { low_balance_threshold: settings.lowBalanceThreshold } : {}),
    ...(settings.rechargeThreshold !== undefined ? { recharge_threshold: settings.rechargeThreshold } : {}),
    ...(settings.rechargeAmount !== undefined ? { recharge_amount: settings.rechargeAmount } : {}),
  };
  // Nothing to change (a body naming only the currency): the settings as they are, not an empty UPDATE.
  if (Object.keys(changes).length === 0) return (await db<WalletRow>('wallets').where({ id: walletId }).first())!;
  const [row] = await db<WalletRow>('wallets').where({ id: walletId }).update(changes).returning('*');
  return row;
}

/** The wallet row locked for the rest of the transaction (every balance change holds it). */
export async function lockWallet(trx: Knex.Transaction, walletId: string): Promise<WalletRow> {
  return (await trx<WalletRow>('wallets').where({ id: walletId }).forUpdate().first())!;
}

export interface NewEntry {
  readonly kind: LedgerKind;
  readonly entryKey: string;
  readonly grantId: string | null;
  readonly amount: Dec;
  readonly description: string;
}

/** Appends entries to a locked wallet's ledger, each with the running balance, and stores the final balance. */
export async function appendEntries(trx: Knex.Transaction, wallet: WalletRow, entries: readonly NewEntry[]): Promise<LedgerRow[]> {
  let balance = toDecimal(wallet.balance);
  const rows: LedgerRow[] = [];
  for (const entry of entries) {
    balance = balance.plus(entry.amount);
    const [row] = await trx<LedgerRow>('wallet_ledger')
      .insert({
        wallet_id: wallet.id,
        grant_id: entry.grantId,
        kind: entry.kind,
        entry_key: entry.entryKey,
        amount: entry.amount.toString(),
        balance_after: balance.toString(),
        description: entry.description,
      })
      .returning('*');
    rows.push(row);
  }
  await trx('wallets').where({ id: wallet.id }).update({ balance: balance.toString() });
  (wallet as { balance: string }).balance = balance.toString();
  return rows;
}

export interface NewGrant {
  readonly customerId: string;
  readonly currency: string;
  /** Identifies the grant: creating it twice with one key creates it once. */
  readonly grantKey: string;
  readonly source: GrantSource;
  readonly amount: string;
  readonly priority?: number;
  readonly effectiveAt: Date;
  readonly expiresAt?: Date | null;
  readonly metricCodes?: readonly string[] | null;
  readonly description?: string;
  /**
   * Refuse (WalletBalanceLimitError) a credit that, with the purchases still pending, would take the balance past
   * MAX_WALLET_BALANCE, checked under the wallet lock. The API's check before the lock let two grants racing for the
   * last room both pass, and the second overflowed the balance column: a 500 from Postgres, not a refusal.
   */
  readonly withinBalanceLimit?: boolean;
}

/** Credit (a grant, a purchase) refused under the wallet lock: it would take the balance past MAX_WALLET_BALANCE. Nothing was written. */
export class WalletBalanceLimitError extends Error {
  constructor(readonly currency: string) {
    super(`the credit would take the ${currency} wallet's balance past ${MAX_WALLET_BALANCE.toFixed(0)}`);
    this.name = 'WalletBalanceLimitError';
  }
}

/**
 * Creates a grant and its ledger entry, exactly once per grant key. When the balance is below zero (an
 * overdraft), the new credit first repays it: the grant keeps only what is left after the repayment.
 */
export async function createGrant(db: Knex, grant: NewGrant, trx?: Knex.Transaction): Promise<{ grant: GrantRow; created: boolean }> {
  const run = async (inner: Knex.Transaction) => {
    const wallet = await lockWallet(inner, (await ensureWallet(inner, grant.customerId, grant.currency)).id);
    const existing = await inner<GrantRow>('wallet_grants').where({ wallet_id: wallet.id, grant_key: grant.grantKey }).first();
    if (existing) return { grant: existing, created: false };
    const amount = toDecimal(grant.amount);
    if (grant.withinBalanceLimit && !(await creditFits(inner, grant.customerId, grant.currency, grant.amount, await pendingTopUpAmount(inner, grant.customerId, grant.currency)))) {
      throw new WalletBalanceLimitError(grant.currency);
    }
    // The debt is what the balance lacks of the grants' remaining (balance = sum of remaining - overdraft drawn), as
    // applyWalletCredits reads it, not the balance below zero: a grant the draws could not use (scoped to other
    // metrics, not in effect yet) kept the balance up while the overdraft was drawn, and the new credit repaid none
    // of it (20.00 granted as spendable credit with 30.00 still owed).
    const held: { total?: unknown } | undefined = await inner('wallet_grants').where({ wallet_id: wallet.id }).andWhere('remaining', '>', 0).sum({ total: 'remaining' }).first();
    const debt = Dec.max(toDecimal(String(held?.total ?? 0)).minus(toDecimal(String(wallet.balance))), ZERO);
    const repaid = Dec.min(debt, amount);
    const [row] = await inner<GrantRow>('wallet_grants')
      .insert({
        wallet_id: wallet.id,
        grant_key: grant.grantKey,
        source: grant.source,
        amount: amount.toString(),
        remaining: amount.minus(repaid).toString(),
        priority: grant.priority ?? 0,
        effective_at: grant.effectiveAt,
        expires_at: grant.expiresAt ?? null,
        metric_codes: grant.metricCodes ? (JSON.stringify(grant.metricCodes) as unknown as string[]) : null,
      })
      .returning('*');
    const entries: NewEntry[] = [
      { kind: 'grant', entryKey: `grant:${grant.grantKey}`, grantId: row.id, amount, description: grant.description ?? `${grant.source} credit` },
    ];
    // The repayment moves nothing: the balance already counts the debt; the entry shows where the credit went.
    if (repaid.gt(ZERO)) entries.push({ kind: 'overdraft_repayment', entryKey: `repay:${grant.grantKey}`, grantId: row.id, amount: ZERO, description: `repays ${repaid.toString()} of overdraft` });
    await appendEntries(inner, wallet, entries);
    return { grant: row, created: true };
  };
  return trx ? run(trx) : db.transaction(run);
}

function grantState(row: GrantRow): GrantState {
  return {
    id: row.id,
    remaining: String(row.remaining),
    priority: row.priority,
    effectiveAt: row.effective_at,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    metricCodes: row.metric_codes,
  };
}

export interface AppliedCredit {
  readonly grantId: string | null;
  readonly source: GrantSource | 'overdraft';
  readonly amount: string;
  readonly expiresAt: Date | null;
}

/**
 * Pays charges from the customer's wallet in the caller's transaction: draws in burn-down order (domain/wallet.ts),
 * one consumption entry per grant drawn on. Idempotent per `drawKey` (e.g. the invoice id): drawing again returns
 * the credits already applied. No wallet, nothing applied.
 */
export async function applyWalletCredits(
  trx: Knex.Transaction,
  request: {
    customerId: string;
    currency: string;
    drawKey: string;
    charges: readonly CreditCharge[];
    during: UsageSpan;
    description: string;
    /** What the usage before a moment of the span made payable: caps grants expiring inside the span. */
    accruedBefore?: (at: Date) => Promise<string>;
  },
): Promise<AppliedCredit[]> {
  const found = await findWallet(trx, request.customerId, request.currency);
  if (!found) return [];
  const wallet = await lockWallet(trx, found.id);
  const already = await appliedCredits(trx, wallet.id, request.drawKey);
  if (already.length > 0) return already;
  const grants = await trx<GrantRow>('wallet_grants').where({ wallet_id: wallet.id }).andWhere('remaining', '>', 0);
  // The debt is what the balance lacks of the grants' remaining (balance = sum of remaining - overdraft drawn), not
  // the balance below zero: a grant this draw cannot use (not in effect yet, scoped, held past expiry) keeps the
  // balance up while the overdraft is already drawn, and reading the balance let the wallet go past its limit.
  const grantsRemaining = grants.reduce((sum, grant) => sum.plus(toDecimal(String(grant.remaining))), ZERO);
  const debt = Dec.max(grantsRemaining.minus(toDecimal(String(wallet.balance))), ZERO);
  const overdraftAvailable = Dec.max(toDecimal(String(wallet.overdraft_limit)).minus(debt), ZERO);
  const accruedBefore = await accruedBeforeExpiries(grants, request);
  const { drawing, lineDraws } = drawCreditsByLine({ currency: request.currency, grants: grants.map(grantState), charges: request.charges, during: request.during, overdraftAvailable: overdraftAvailable.toString(), accruedBefore });
  const entries = drawing.draws.map((draw: CreditDraw) => ({
    kind: 'consumption' as const,
    entryKey: `draw:${request.drawKey}:${draw.grantId ?? 'overdraft'}`,
    grantId: draw.grantId,
    amount: toDecimal(draw.amount).neg(),
    description: request.description,
  }));
  for (const draw of drawing.draws) {
    if (draw.grantId) await trx('wallet_grants').where({ id: draw.grantId }).update({ remaining: trx.raw('remaining - ?::numeric', [draw.amount]) });
  }
  await appendEntries(trx, wallet, entries);
  // Which lines each grant paid: a re-rating gives back to the grants that paid the line it lowers.
  await recordDrawLines(trx, wallet.id, request.drawKey, DRAW_PART, lineDraws);
  return appliedCredits(trx, wallet.id, request.drawKey);
}

/** For each distinct expiry strictly inside the span, what the usage before it made payable. */
async function accruedBeforeExpiries(grants: readonly GrantRow[], request: { during: UsageSpan; accruedBefore?: (at: Date) => Promise<string> }) {
  if (!request.accruedBefore) return undefined;
  const inside = grants.map((grant) => grant.expires_at).filter((at): at is Date => at !== null && at > request.during.from && at < request.during.to);
  const moments = [...new Set(inside.map((at) => at.getTime()))].sort((a, b) => a - b);
  const checkpoints: { at: Date; payable: string }[] = [];
  for (const moment of moments) checkpoints.push({ at: new Date(moment), payable: await request.accruedBefore(new Date(moment)) });
  return checkpoints;
}

async function appliedCredits(db: Db, walletId: string, drawKey: string): Promise<AppliedCredit[]> {
  const rows: { grant_id: string | null; amount: string; source: GrantSource | null; expires_at: Date | null }[] = await db('wallet_ledger as l')
    .leftJoin('wallet_grants as g', 'g.id', 'l.grant_id')
    .where({ 'l.wallet_id': walletId, 'l.kind': 'consumption' })
    .andWhere('l.entry_key', 'like', `draw:${likeEscaped(drawKey)}:%`)
    .orderBy('l.id')
    .select('l.grant_id', 'l.amount', 'g.source', 'g.expires_at');
  return rows.map((row) => ({ grantId: row.grant_id, source: row.source ?? 'overdraft', amount: toDecimal(String(row.amount)).neg().toString(), expiresAt: row.expires_at }));
}

/**
 * Gives back what a draw took (a reversed outcome): to each grant still in effect, or as one goodwill grant (no
 * expiry) for what expired grants had paid. Newest draw first, continuing after what earlier give-backs of the same
 * draw returned, and never more than the draw took in all. Idempotent per (`drawKey`, `reversalKey`). Returns what
 * this call gave back (0 when nothing was drawn or it already ran). A re-rating gives back line by line
 * (reverseWalletCreditsByLine).
 */
export async function reverseWalletCredits(
  db: Knex,
  request: { customerId: string; currency: string; drawKey: string; reversalKey: string; amount: string; at: Date },
): Promise<string> {
  return db.transaction(async (trx) => {
    const found = await findWallet(trx, request.customerId, request.currency);
    if (!found) return '0';
    const wallet = await lockWallet(trx, found.id);
    if (await giveBackDone(trx, wallet.id, request.drawKey, request.reversalKey)) return '0';
    let left = toDecimal(request.amount);
    const backs: { grantId: string | null; amount: Dec }[] = [];
    // Newest draws first: what the invoice drew last is given back first.
    for (const holding of (await drawHoldings(trx, wallet.id, request.drawKey)).reverse()) {
      if (left.lte(ZERO)) break;
      const back = Dec.min(left, holding.held);
      if (back.lte(ZERO)) continue;
      left = left.minus(back);
      backs.push({ grantId: holding.grantId, amount: back });
    }
    return formatMoney(await writeGiveBacks(db, trx, wallet, { ...request, scope: `${request.drawKey}/${request.reversalKey}` }, backs), request.currency);
  });
}

/** What a re-rating asks of a draw: its key, the lines it lowers (by how much), and at most `cap` in all. */
export interface LineGiveBackRequest {
  readonly customerId: string;
  readonly currency: string;
  readonly drawKey: string;
  readonly lowered: readonly LoweredLine[];
  readonly cap: string;
}

/**
 * What a re-rating would give back to a draw now, line by line (domain/wallet.ts lineGiveBacks), without writing:
 * each lowered line's credit goes to the grants that paid that line, up to what each paid of it and still holds.
 */
export async function plannedLineGiveBacks(db: Db, request: LineGiveBackRequest): Promise<LineDraw[]> {
  const wallet = await findWallet(db, request.customerId, request.currency);
  if (!wallet) return [];
  const holdings = await drawHoldings(db, wallet.id, request.drawKey);
  if (holdings.length === 0) return [];
  const rows = await drawLineRows(db, wallet.id, request.drawKey);
  const paid = rows.filter((row) => row.part === DRAW_PART);
  return lineGiveBacks({
    currency: request.currency,
    lowered: request.lowered,
    payers: holdings.map((holding) => ({ grantId: holding.grantId, held: holding.held.toString(), metricCodes: holding.metricCodes })),
    // A draw written before draws kept their lines has none: the scope rule stands in for it.
    paid: paid.length > 0 ? asLineDraws(paid) : undefined,
    givenBefore: asLineDraws(rows.filter((row) => row.part !== DRAW_PART)),
    cap: request.cap,
  });
}

/**
 * Gives a re-rating's credit back to a draw line by line (plannedLineGiveBacks, under the wallet lock), records
 * what went back of each line, and returns the total. Idempotent per (`drawKey`, `reversalKey`).
 */
export async function reverseWalletCreditsByLine(db: Knex, request: LineGiveBackRequest & { reversalKey: string; at: Date }): Promise<string> {
  return db.transaction(async (trx) => {
    const found = await findWallet(trx, request.customerId, request.currency);
    if (!found) return '0';
    const wallet = await lockWallet(trx, found.id);
    if (await giveBackDone(trx, wallet.id, request.drawKey, request.reversalKey)) return '0';
    const lines = await plannedLineGiveBacks(trx, request);
    // One ledger entry per grant (its key names the grant), in the order the lines were given back.
    const perGrant = new Map<string | null, Dec>();
    for (const line of lines) perGrant.set(line.grantId, (perGrant.get(line.grantId) ?? ZERO).plus(toDecimal(line.amount)));
    const backs = [...perGrant].map(([grantId, amount]) => ({ grantId, amount }));
    const given = await writeGiveBacks(db, trx, wallet, { ...request, scope: `${request.drawKey}/${request.reversalKey}` }, backs);
    await recordDrawLines(trx, wallet.id, request.drawKey, request.reversalKey, lines);
    return formatMoney(given, request.currency);
  });
}

/** A give-back of the draw with this reversal key already ran (its entries carry the key). */
async function giveBackDone(trx: Knex.Transaction, walletId: string, drawKey: string, reversalKey: string): Promise<boolean> {
  const scope = `${drawKey}/${reversalKey}`;
  const done = await trx('wallet_ledger').where({ wallet_id: walletId }).andWhere('entry_key', 'like', `reverse:${likeEscaped(scope)}:%`).first('id');
  return !!done;
}

/**
 * Each grant (and the overdraft) a draw took from, oldest draw first, with what it still holds of it: what it paid,
 * less what line-by-line give-backs returned of it (recorded per grant), less its share of the other give-backs
 * (reversed outcomes, re-ratings before migration 0800), which went newest draw first.
 */
async function drawHoldings(db: Db, walletId: string, drawKey: string): Promise<(AppliedCredit & { held: Dec; metricCodes: string[] | null })[]> {
  const applied = await appliedCredits(db, walletId, drawKey);
  if (applied.length === 0) return [];
  // Keys carry the draw, so what earlier give-backs of this draw returned can be summed from the ledger.
  const drawPrefix = `${likeEscaped(drawKey)}/`;
  // One query at a time on a transaction's connection (store/transactions.ts).
  const earlierEntries = await db('wallet_ledger').where({ wallet_id: walletId, kind: 'reversal' }).andWhere('entry_key', 'like', `reverse:${drawPrefix}%`).sum({ total: 'amount' }).first();
  const earlierGoodwill = await db('wallet_grants').where({ wallet_id: walletId, source: 'goodwill' }).andWhere('grant_key', 'like', `goodwill:${drawPrefix}%`).sum({ total: 'amount' }).first();
  const byLine = (await drawLineRows(db, walletId, drawKey)).filter((row) => row.part !== DRAW_PART);
  const givenByLine = (grantId: string | null) => byLine.filter((row) => row.grant_id === grantId).reduce((sum, row) => sum.plus(toDecimal(row.amount)), ZERO);
  const earlier = toDecimal(String(earlierEntries?.total ?? 0)).plus(toDecimal(String(earlierGoodwill?.total ?? 0)));
  let unattributed = Dec.max(earlier.minus(byLine.reduce((sum, row) => sum.plus(toDecimal(row.amount)), ZERO)), ZERO);
  const scopes = new Map<string, string[] | null>();
  for (const grant of await db<GrantRow>('wallet_grants').whereIn('id', applied.flatMap((credit) => (credit.grantId ? [credit.grantId] : [])))) scopes.set(grant.id, grant.metric_codes);
  const holdings = applied.map((credit) => ({ ...credit, held: Dec.max(toDecimal(credit.amount).minus(givenByLine(credit.grantId)), ZERO), metricCodes: credit.grantId ? (scopes.get(credit.grantId) ?? null) : null }));
  for (const holding of [...holdings].reverse()) {
    const skipped = Dec.min(unattributed, holding.held);
    unattributed = unattributed.minus(skipped);
    holding.held = holding.held.minus(skipped);
  }
  return holdings;
}

/**
 * Writes give-backs of a draw: to each grant still in effect, the overdraft lifted, and one goodwill grant (no expiry)
 * for what expired grants had paid. Returns what went back.
 */
async function writeGiveBacks(
  db: Knex,
  trx: Knex.Transaction,
  wallet: WalletRow,
  request: { customerId: string; currency: string; scope: string; at: Date },
  backs: readonly { grantId: string | null; amount: Dec }[],
): Promise<Dec> {
  const { scope } = request;
  let goodwill = ZERO;
  let given = ZERO;
  const entries: NewEntry[] = [];
  for (const { grantId, amount: back } of backs) {
    if (back.lte(ZERO)) continue;
    given = given.plus(back);
    const grant = grantId ? await trx<GrantRow>('wallet_grants').where({ id: grantId }).first() : undefined;
    if (grant && (grant.expires_at === null || grant.expires_at > request.at)) {
      await trx('wallet_grants').where({ id: grant.id }).update({ remaining: trx.raw('remaining + ?::numeric', [back.toString()]) });
      entries.push({ kind: 'reversal', entryKey: `reverse:${scope}:${grant.id}`, grantId: grant.id, amount: back, description: 'credit given back' });
    } else if (grantId === null) {
      // Overdraft drawn: giving it back just lifts the balance.
      entries.push({ kind: 'reversal', entryKey: `reverse:${scope}:overdraft`, grantId: null, amount: back, description: 'overdraft given back' });
    } else {
      goodwill = goodwill.plus(back);
    }
  }
  if (entries.length > 0) await appendEntries(trx, wallet, entries);
  if (goodwill.gt(ZERO)) {
    await createGrant(
      db,
      { customerId: request.customerId, currency: request.currency, grantKey: `goodwill:${scope}`, source: 'goodwill', amount: goodwill.toString(), effectiveAt: request.at, description: 'credit given back; the grants it came from expired' },
      trx,
    );
    // Mark the give-back done even when it was all goodwill.
    const reloaded = await lockWallet(trx, wallet.id);
    await appendEntries(trx, reloaded, [{ kind: 'reversal', entryKey: `reverse:${scope}:goodwill`, grantId: null, amount: ZERO, description: 'given back as a goodwill grant' }]);
  }
  return given;
}

/**
 * Expires what is left of every grant whose expiry has passed, one ledger entry each. Returns the grants expired.
 * `sources`: only grants of these sources (the wallet workflow's timers leave `plan_included` to the invoice).
 * A grant some of whose customer's usage from before its expiry is not invoiced yet is held (not expired): that
 * invoice may still draw on it for that usage (docs/wallets.md); the next run after the invoice expires the rest.
 */
export async function expireGrants(db: Knex, walletId: string, at: Date, sources?: readonly GrantSource[]): Promise<GrantRow[]> {
  return db.transaction(async (trx) => {
    const wallet = await lockWallet(trx, walletId);
    const query = trx<GrantRow>('wallet_grants as g')
      .where('g.wallet_id', walletId)
      .andWhere('g.expires_at', '<=', at)
      .andWhere('g.remaining', '>', 0)
      .whereNotExists(uninvoicedUsageBefore(trx, wallet, trx.ref('g.expires_at')))
      .select('g.*');
    const due = sources ? await query.whereIn('g.source', [...sources]) : await query;
    if (due.length === 0) return [];
    const entries: NewEntry[] = [];
    for (const grant of due) {
      await trx('wallet_grants').where({ id: grant.id }).update({ remaining: 0 });
      // A grant can expire more than once: a refund the gateway refused restores credit to it after its expiry. The
      // first expiry keeps `expire:<grant>`; a later one is numbered, else its key hit the first's, the expiry failed
      // and the wallet workflow's timer step with it, on every retry. Once per expiry: the wallet lock and
      // `remaining > 0` keep a retry from expiring what is already expired.
      const earlier = await trx('wallet_ledger').where({ wallet_id: walletId, grant_id: grant.id, kind: 'expiry' }).count<{ count: string }[]>('* as count');
      const n = Number(earlier[0]?.count ?? 0);
      entries.push({ kind: 'expiry', entryKey: n === 0 ? `expire:${grant.id}` : `expire:${grant.id}:${n + 1}`, grantId: grant.id, amount: toDecimal(String(grant.remaining)).neg(), description: `${grant.source} credit expired` });
    }
    await appendEntries(trx, wallet, entries);
    return due;
  });
}

/**
 * The customer's subscriptions in the wallet's currency that are billing (started, not ended), with their plan: a
 * period's usage is invoiced in the transaction that starts the next, so `s.current_period_start` is where the
 * usage not invoiced yet begins.
 */
function billingSubscriptionsOf(db: Db, wallet: Pick<WalletRow, 'customer_id' | 'currency'>) {
  return db('subscriptions as s')
    .join('plans as p', 'p.id', 's.plan_id')
    .where('s.customer_id', wallet.customer_id)
    .andWhere('p.currency', wallet.currency)
    .whereNotIn('s.status', ['scheduled', 'canceled']);
}

/** The wallet's customer has usage from before `before` not invoiced yet (a current period started before it). */
function uninvoicedUsageBefore(db: Db, wallet: Pick<WalletRow, 'customer_id' | 'currency'>, before: Knex.Ref<string, Record<string, string>>) {
  return billingSubscriptionsOf(db, wallet).andWhere('s.current_period_start', '<', before).select(db.raw('1'));
}

/**
 * When held grants (expiry passed, usage from before it not invoiced yet) should be looked at again: the earliest
 * end of a current period holding one (its invoice follows), or null when none is held.
 */
export async function heldGrantsRecheckAt(db: Db, wallet: WalletRow, at: Date): Promise<Date | null> {
  const row: { next: Date | null } | undefined = await billingSubscriptionsOf(db, wallet)
    .join('wallet_grants as g', (join) => join.on(db.raw('s.current_period_start < g.expires_at')))
    .andWhere('g.wallet_id', wallet.id)
    .andWhere('g.expires_at', '<=', at)
    .andWhere('g.remaining', '>', 0)
    .first(db.raw('min(s.current_period_end) AS next'));
  return row?.next ? new Date(row.next) : null;
}

export async function listGrants(db: Db, walletId: string): Promise<GrantRow[]> {
  return db<GrantRow>('wallet_grants').where({ wallet_id: walletId }).orderBy([{ column: 'priority' }, { column: 'expires_at' }, { column: 'created_at' }]);
}

export async function recentLedger(db: Db, walletId: string, limit = 20): Promise<LedgerRow[]> {
  return db<LedgerRow>('wallet_ledger').where({ wallet_id: walletId }).orderBy('id', 'desc').limit(limit);
}

/**
 * What the customer can still spend in a currency right now: the ledger balance minus the usage of the open
 * periods, rated as the invoice will rate it (after the plan's credit bucket), from the running totals. So an
 * accepted event lowers it as soon as its insert commits. Null when the customer has no wallet in the currency.
 */
export async function availableBalance(db: Knex, customerId: string, currency: string): Promise<string | null> {
  const wallet = await findWallet(db, customerId, currency);
  if (!wallet) return null;
  const pending = await pendingUsageCost(db, customerId, currency);
  return formatMoney(toDecimal(String(wallet.balance)).minus(pending.cost), currency);
}

/**
 * The available balance that can pay usage of these metrics (a wallet feature's: the ones its plan prices): less what
 * grants scoped only to other metrics hold, which no draw of this usage ever takes (grantPays). Counted whole, a
 * 5.00 grant for tokens answered has_access true on a plan that prices only calls, whose usage was billed in cash.
 * Null without a wallet.
 */
export async function availableBalanceFor(db: Knex, customerId: string, currency: string, metricCodes: readonly string[]): Promise<string | null> {
  const wallet = await findWallet(db, customerId, currency);
  if (!wallet) return null;
  const pending = await pendingUsageCost(db, customerId, currency);
  const available = toDecimal(String(wallet.balance)).minus(pending.cost);
  const held: { id: string; metric_codes: string[] | null; remaining: string }[] = await db('wallet_grants').where({ wallet_id: wallet.id }).where('remaining', '>', 0).whereNotNull('metric_codes').select('id', 'metric_codes', 'remaining');
  const elsewhere = held.filter((grant) => !grant.metric_codes!.some((code) => metricCodes.includes(code)));
  // What they hold once the pending usage is drawn: a tokens-only grant that pays 4.00 of another subscription's
  // pending tokens is already out of `available` by those 4.00 (10.00 held, 5.00 of it tokens-only: 5.00 for calls,
  // where taking its whole 5.00 off again answered 1.00).
  return formatMoney(elsewhere.reduce((left, grant) => left.minus(pending.grantsLeft.get(String(grant.id)) ?? toDecimal(String(grant.remaining))), available), currency);
}

/** The rated usage of the customer's open periods in a currency (what the next invoices will draw), since when, and what each grant would hold after. */
export async function pendingUsageCost(db: Knex, customerId: string, currency: string): Promise<{ cost: Dec; since: Date | null; grantsLeft: ReadonlyMap<string, Dec> }> {
  const subscriptions = await invoicedSubscriptions(db, customerId, currency);
  let since: Date | null = null;
  /** What each stretch's invoice will ask the wallet to pay (walletPayableCharges), and when its usage accrued. */
  const payable: { charges: CreditCharge[]; during: UsageSpan }[] = [];
  for (const subscription of subscriptions) {
    // From an immediate plan change within the period: its proration invoice billed (and drew for) the usage before
    // it. An event stamped before it that arrives later is late usage, which no wallet draw pays (docs/wallets.md).
    // At the plan in force to the period's end: a change in the grace window after it does not cut it (openStretchOf).
    const open = await openStretchOf(db, subscription.subscriptionId, { start: subscription.periodStart!, end: subscription.periodEnd! });
    const from = open.from;
    // Usage closed but not invoiced yet: the close claims the events (they leave the open usage) and the invoice draws
    // in a later transaction. Counted nowhere in between, the closed usage lifted the available balance until the
    // draw took it down again: a balance watch in that gap re-armed auto-recharge, and the draw crossed again (a
    // second recharge and webhook for one crossing). It stays pending, rated from its claimed events, until drawn.
    const unbilled = await unbilledClosures(db, subscription.subscriptionId, subscription.periodStart!);
    const stretches: { start: Date; end: Date; closeId: string | null; planId: string | null }[] = unbilled.map((closure) => ({
      start: new Date(closure.period_start),
      end: new Date(closure.period_end),
      closeId: String(closure.id),
      planId: closure.plan_id,
    }));
    if (!stretches.some((stretch) => stretch.start.getTime() === from.getTime())) stretches.push({ start: from, end: subscription.periodEnd!, closeId: null, planId: open.planId });
    // Oldest first: the first invoice of these that bills usage carries the credits of outcomes reversed since their
    // period was invoiced (store/reversal-credits.ts).
    stretches.sort((a, b) => a.start.getTime() - b.start.getTime());
    for (const [index, stretch] of stretches.entries()) {
      const plan: PlanRow = stretch.planId
        ? await db('plans').where('plans.id', stretch.planId).first('plans.*')
        : await db('plans').join('subscriptions', 'subscriptions.plan_id', 'plans.id').where('subscriptions.id', subscription.subscriptionId).first('plans.*');
      const charges = (plan.charges as Charge[]).filter((charge) => charge.price.model !== 'flat');
      if (charges.length === 0) continue;
      const usage = stretch.closeId
        ? await usageForCharges(db, charges, { kind: 'claimed', closeId: stretch.closeId }, currency)
        : await openUsageForCharges(db, customerId, charges, currency, stretch.start, subscription.periodEnd!, billedPastShownEnd(subscription.status));
      // The invoice's rating function: a dimensional charge is priced per combination, not by its representative price.
      // The stretch's share of the allowances when a plan change cut the period, as its invoice will apply them: the
      // bucket and the minimum commitment, whose true-up the invoice's draw pays as it pays usage (walletPayableCharges).
      // Rated with the bucket only, a 50.00 commitment with 10.00 of usage showed 190.00 available of 200.00 where the
      // invoice drew 50.00 and left 150.00.
      const share = stretch.closeId ? await closureAllowanceShare(db, stretch.closeId) : await allowanceShareOf(db, subscription.subscriptionId, { start: stretch.start, end: null });
      const rated = rateDimensionalUsage({ currency, charges, usage, ...stretchAllowances({ currency, flat_fee: plan.flat_fee, charges: plan.charges, settings: plan.settings }, share) });
      const thresholds = usageThresholdsOf(plan.settings);
      // What the stretch's threshold invoices billed: the invoice that closes the stretch takes it back before the
      // wallet pays (docs/pricing.md), so that usage is never drawn from the wallet and is not pending on it; and which
      // lines they billed: the wallet pays each line only for what they did not (as the draw).
      const billedInvoices = thresholds ? billedThresholds(await listThresholdInvoices(db, subscription.subscriptionId, stretch.start)) : [];
      const billed = billedByThresholds(billedInvoices, currency);
      const thresholdBilled = billed.gt(ZERO) ? await thresholdBilledUsage(db, billedInvoices, currency) : {};
      // A retention discount on the invoice that bills the stretch (the period's invoice opening at its end) lowers
      // what the wallet pays of it: the draw's own rule over the same lines (walletPayableCharges, the discount line
      // as the invoice computes it; threshold credits after it). Left out, the available balance showed 100.00 of
      // usage pending where the invoice drew 70.00 (30 % off).
      const span = { start: stretch.start.toISOString(), end: stretch.end.toISOString() };
      // The invoice computes its one discount line over the next period's fee and the usage together (rounded once):
      // the fee that invoice bills (the plan in force then) is in the base here too, so the usage's share (what the
      // wallet pays) is the invoice's to the cent. The usage preview reads the same line (store/offers.ts).
      const usageLines = ratedLinesForPeriod(rated.lines, span);
      // Read with or without a discount: what the draw pays is bounded by that invoice's total, fee included.
      const feeLines = await feeLinesOfPeriodInvoice(db, subscription.subscriptionId, stretch.end);
      const { percentOff, discount } = await previewedRetentionDiscount(db, subscription.subscriptionId, { lines: usageLines, currency, span }, feeLines);
      const lines: DraftInvoiceLine[] = [...feeLines, ...usageLines];
      // The reversal credits lower what that invoice asks of the wallet (never more than its total): left out, 1.10 of
      // usage showed pending where the invoice (1.10 - 5.30 for an outcome reversed since) drew nothing. After the
      // discount, which the invoice computes without them.
      if (index === 0) lines.push(...(await pendingReversalCredits(db, subscription.subscriptionId, customerId, plan, { periodStart: span.start, percentOff })));
      if (discount) lines.push(discount);
      if (billed.gt(ZERO)) lines.push({ kind: 'threshold_credit', description: 'Billed on threshold invoices', metricCode: null, quantity: '1', amount: formatMoney(billed.neg(), currency), periodStart: span.end, periodEnd: span.end, breakdown: {} });
      payable.push({ charges: walletPayableCharges(lines, currency, keptAfterDiscounts(lines), thresholdBilled), during: { from: stretch.start, to: stretch.end } });
      if (!since || stretch.start < since) since = stretch.start;
    }
  }
  return { ...(await walletWouldDraw(db, customerId, currency, payable)), since };
}

/**
 * The customer's subscriptions in the currency whose open usage an invoice will still bill (and the wallet draw for):
 * every one in a period but scheduled and canceled ones. The entitlement list (active, trialing, past due) left out a
 * paused subscription and one cancelling at its period's end, whose period and closing invoices draw all the same:
 * their usage was pending nowhere, and the available balance rose by it until the invoice took it down again.
 */
async function invoicedSubscriptions(db: Knex, customerId: string, currency: string): Promise<{ subscriptionId: string; status: string; periodStart: Date; periodEnd: Date }[]> {
  const rows: { id: string; status: string; current_period_start: Date; current_period_end: Date }[] = await db('subscriptions as s')
    .join('plans as p', 'p.id', 's.plan_id')
    .where({ 's.customer_id': customerId, 'p.currency': currency })
    .whereNotIn('s.status', ['scheduled', 'canceled'])
    .whereNotNull('s.current_period_start')
    .whereNotNull('s.current_period_end')
    .orderBy('s.start_at', 'desc')
    .select('s.id', 's.status', 's.current_period_start', 's.current_period_end');
  return rows.map((row) => ({ subscriptionId: row.id, status: row.status, periodStart: row.current_period_start, periodEnd: row.current_period_end }));
}

/**
 * What the wallet's draws would take for these charges if their invoices were written now: the draw's own rule
 * (drawCredits over the grants and the overdraft, as applyWalletCredits), stretch after stretch on what the earlier
 * ones left. Usage no grant may pay (a grant scoped to other metrics, one not in effect during the usage) and usage
 * past the overdraft is billed in cash, not drawn: counted as pending, it showed 190.00 available where the invoice
 * drew nothing and the wallet kept 200.00. Without a wallet, all of it (nothing would be drawn).
 */
async function walletWouldDraw(
  db: Knex,
  customerId: string,
  currency: string,
  payable: readonly { charges: CreditCharge[]; during: UsageSpan }[],
): Promise<{ cost: Dec; grantsLeft: ReadonlyMap<string, Dec> }> {
  const all = payable.reduce((sum, entry) => entry.charges.reduce((total, charge) => total.plus(toDecimal(charge.amount)), sum), ZERO);
  const wallet = await findWallet(db, customerId, currency);
  if (!wallet || all.isZero()) return { cost: all, grantsLeft: new Map() };
  const rows = await db<GrantRow>('wallet_grants').where({ wallet_id: wallet.id }).andWhere('remaining', '>', 0);
  const grantsRemaining = rows.reduce((sum, grant) => sum.plus(toDecimal(String(grant.remaining))), ZERO);
  const debt = Dec.max(grantsRemaining.minus(toDecimal(String(wallet.balance))), ZERO);
  let overdraftAvailable = Dec.max(toDecimal(String(wallet.overdraft_limit)).minus(debt), ZERO);
  let grants = rows.map(grantState);
  let drawn = ZERO;
  // Oldest usage first: closed stretches are invoiced before the open one.
  for (const entry of [...payable].sort((a, b) => a.during.from.getTime() - b.during.from.getTime())) {
    const drawing = drawCredits({ currency, grants, charges: entry.charges, during: entry.during, overdraftAvailable: overdraftAvailable.toString() });
    drawn = drawn.plus(toDecimal(drawing.covered));
    const took = new Map(drawing.draws.filter((draw) => draw.grantId !== null).map((draw) => [draw.grantId!, toDecimal(draw.amount)]));
    grants = grants.map((grant) => (took.has(grant.id) ? { ...grant, remaining: toDecimal(grant.remaining).minus(took.get(grant.id)!).toString() } : grant));
    const overdrawn = drawing.draws.find((draw) => draw.grantId === null);
    if (overdrawn) overdraftAvailable = Dec.max(overdraftAvailable.minus(toDecimal(overdrawn.amount)), ZERO);
  }
  // And what each grant would hold after those draws (availableBalanceFor).
  return { cost: drawn, grantsLeft: new Map(grants.map((grant) => [String(grant.id), toDecimal(grant.remaining)])) };
}

/**
 * The subscription's usage closures since its current period started whose usage no invoice has billed yet (no
 * period, closing or proration invoice has a usage line starting where the closure starts).
 */
async function unbilledClosures(db: Db, subscriptionId: string, periodStart: Date): Promise<{ id: string; period_start: Date; period_end: Date; plan_id: string | null }[]> {
  return db('usage_period_closures as c')
    .where('c.subscription_id', subscriptionId)
    .andWhere('c.period_start', '>=', periodStart)
    .whereNotExists(
      db('invoices as i')
        .join('invoice_lines as l', 'l.invoice_id', 'i.id')
        .whereRaw('i.subscription_id = c.subscription_id')
        .whereIn('i.kind', ['period', 'closing', 'proration'])
        .andWhere('l.kind', 'usage')
        .whereRaw('l.period_start = c.period_start')
        .select(db.raw('1')),
    )
    .orderBy('c.period_start')
    .select('c.id', 'c.period_start', 'c.period_end', 'c.plan_id');
}
