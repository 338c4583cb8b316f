/**
 * Buying credits (issue 12 point 3, docs/wallets.md): top-ups, auto-recharge on threshold crossings, expiry
 * notices. The wallet workflow (workflows/wallet.ts) drives a top-up through three steps, each idempotent on the
 * top-up row: its invoice (keyed on the row), the charge (chargeInvoice, idempotent on `payment:<invoice>:1`),
 * then the `purchased` grant (grant key `top-up:<top-up id>`), written only when the invoice is paid.
 */
import type { Knex } from 'knex';
import { Dec, formatMoney, toDecimal, ZERO } from '../domain/money';
import { addIntervals, parseInterval } from '../domain/periods';
import type { GrantSource } from '../domain/wallet';
import { observeThresholds, ThresholdDecision, ThresholdWatch } from '../domain/wallet-recharge';
import { finalizeInvoice, findInvoice, InvoiceRow, numberFinalizedInvoices } from './invoices';
import { enqueueOutboxEvent } from './outbox';
import { markInvoiceUncollectible } from './payments';
import { appendEntries, availableBalance, createGrant, creditFits, pendingTopUpAmount, ensureWallet, expireGrants, GrantRow, heldGrantsRecheckAt, LedgerRow, lockWallet, WalletBalanceLimitError, WalletRow } from './wallets';

type Db = Knex | Knex.Transaction;

export type TopUpKind = 'top_up' | 'recharge';
export type TopUpStatus = 'pending' | 'paid' | 'declined';

export interface TopUpRow {
  id: string;
  wallet_id: string;
  customer_id: string;
  currency: string;
  kind: TopUpKind;
  request_key: string;
  amount: string;
  priority: number;
  expires_at: Date | null;
  status: TopUpStatus;
  invoice_id: string | null;
  grant_id: string | null;
  decline_code: string | null;
  requested_by: string;
  created_at: Date;
  settled_at: Date | null;
}

export const TOP_UP_INVOICE_KIND = 'wallet_top_up';

/** The grant a paid top-up creates: one per top-up, whatever retries or crashes happen. */
export function topUpGrantKey(topUpId: string): string {
  return `top-up:${topUpId}`;
}

export interface NewTopUp {
  readonly id?: string;
  readonly customerId: string;
  readonly currency: string;
  readonly kind: TopUpKind;
  /** The purchase's identity: the same key inserts one row. */
  readonly requestKey: string;
  readonly amount: string;
  readonly priority?: number;
  readonly expiresAt?: Date | null;
  readonly requestedBy: string;
  /**
   * Refuse (WalletBalanceLimitError) a new purchase whose credit, beside the balance and the purchases pending, would
   * take the wallet past MAX_WALLET_BALANCE, checked under the wallet lock as createGrant's `withinBalanceLimit` is:
   * a check before it let a top-up and a grant (or two top-ups) racing for the last room both pass, and the paid
   * top-up's grant could never be written. A repeat of a recorded purchase is not refused.
   */
  readonly withinBalanceLimit?: boolean;
}

/** Records the intent to buy credits (pending), once per request key. Returns the row, new or existing. */
export async function requestTopUp(db: Db, topUp: NewTopUp): Promise<{ row: TopUpRow; created: boolean }> {
  if (topUp.withinBalanceLimit && !db.isTransaction) return (db as Knex).transaction((trx) => requestTopUp(trx, topUp));
  const wallet = await ensureWallet(db, topUp.customerId, topUp.currency);
  if (topUp.withinBalanceLimit) {
    await lockWallet(db as Knex.Transaction, wallet.id);
    const recorded = await db<TopUpRow>('wallet_top_ups').where({ wallet_id: wallet.id, request_key: topUp.requestKey }).first();
    if (recorded) return { row: recorded, created: false };
    if (!(await creditFits(db, topUp.customerId, topUp.currency, topUp.amount, await pendingTopUpAmount(db, topUp.customerId, topUp.currency)))) throw new WalletBalanceLimitError(topUp.currency);
  }
  const [inserted] = await db<TopUpRow>('wallet_top_ups')
    .insert({
      ...(topUp.id ? { id: topUp.id } : {}),
      wallet_id: wallet.id,
      customer_id: topUp.customerId,
      currency: topUp.currency,
      kind: topUp.kind,
      request_key: topUp.requestKey,
      amount: topUp.amount,
      priority: topUp.priority ?? 0,
      expires_at: topUp.expiresAt ?? null,
      requested_by: topUp.requestedBy,
    })
    .onConflict(['wallet_id', 'request_key'])
    .ignore()
    .returning('*');
  if (inserted) return { row: inserted, created: true };
  return { row: (await db<TopUpRow>('wallet_top_ups').where({ wallet_id: wallet.id, request_key: topUp.requestKey }).first())!, created: false };
}

export async function findTopUp(db: Db, topUpId: string): Promise<TopUpRow | undefined> {
  return db<TopUpRow>('wallet_top_ups').where({ id: topUpId }).first();
}

export async function findGrant(db: Db, grantId: string): Promise<GrantRow | undefined> {
  return db<GrantRow>('wallet_grants').where({ id: grantId }).first();
}

export async function listTopUps(db: Db, customerId: string): Promise<TopUpRow[]> {
  return db<TopUpRow>('wallet_top_ups').where({ customer_id: customerId }).orderBy('created_at');
}

/** A top-up whose start failed and that Temporal confirms nobody will run: removed (nothing was charged). */
export async function deleteUnstartedTopUp(db: Db, topUpId: string): Promise<void> {
  await db('wallet_top_ups').where({ id: topUpId, status: 'pending' }).whereNull('invoice_id').delete();
}

export { pendingTopUpAmount }; // beside creditFits in ./wallets, which createGrant's limit check shares

export async function pendingTopUpIds(db: Db, customerId: string): Promise<string[]> {
  const rows: { id: string }[] = await db('wallet_top_ups').where({ customer_id: customerId, status: 'pending' }).orderBy('created_at').select('id');
  return rows.map((row) => row.id);
}

/**
 * The top-up's invoice: created and finalized once (the row lock and `invoice_id` make a retry find it), one
 * `prepaid_credits` line for the amount, then numbered. Returns the issued invoice.
 */
export async function prepareTopUpInvoice(db: Knex, topUpId: string): Promise<InvoiceRow> {
  const invoiceId = await db.transaction(async (trx) => {
    const topUp = await trx<TopUpRow>('wallet_top_ups').where({ id: topUpId }).forUpdate().first();
    if (!topUp) throw new Error(`top-up ${topUpId} not found`);
    if (topUp.invoice_id) return topUp.invoice_id;
    const at = topUp.created_at;
    const [draft] = await trx<InvoiceRow>('invoices')
      .insert({ customer_id: topUp.customer_id, subscription_id: null, kind: TOP_UP_INVOICE_KIND, status: 'draft', currency: topUp.currency, period_start: at, period_end: at })
      .returning('*');
    const amount = formatMoney(toDecimal(String(topUp.amount)), topUp.currency);
    await finalizeInvoice(
      trx,
      draft,
      [
        {
          kind: 'prepaid_credits',
          description: topUp.kind === 'recharge' ? 'Prepaid credits (automatic recharge)' : 'Prepaid credits',
          metricCode: null,
          quantity: '1',
          amount,
          periodStart: at.toISOString(),
          periodEnd: at.toISOString(),
          breakdown: { topUpId: topUp.id, kind: topUp.kind, credits: amount },
        },
      ],
      { topUpId: topUp.id },
    );
    await trx('wallet_top_ups').where({ id: topUp.id }).update({ invoice_id: draft.id });
    return draft.id;
  });
  await numberFinalizedInvoices(db);
  return (await findInvoice(db, invoiceId))!;
}

export interface TopUpSettlement {
  readonly status: TopUpStatus;
  readonly grantId: string | null;
  readonly declineCode: string | null;
}

/**
 * After the charge: a paid invoice becomes the `purchased` grant (keyed on the top-up, so exactly once); an unpaid
 * one (declined) is marked uncollectible, the top-up declined, and the customer told (`wallet.recharge_failed` or
 * `wallet.top_up_failed`). Nothing retries a declined top-up: a recharge needs a new crossing.
 */
export async function settleTopUp(db: Knex, topUpId: string, at: Date): Promise<TopUpSettlement> {
  return db.transaction(async (trx) => {
    const topUp = await trx<TopUpRow>('wallet_top_ups').where({ id: topUpId }).forUpdate().first();
    if (!topUp) throw new Error(`top-up ${topUpId} not found`);
    if (topUp.status !== 'pending') return { status: topUp.status, grantId: topUp.grant_id, declineCode: topUp.decline_code };
    const invoice = topUp.invoice_id ? await findInvoice(trx, topUp.invoice_id) : undefined;
    const amount = formatMoney(toDecimal(String(topUp.amount)), topUp.currency);
    if (invoice?.status === 'paid') {
      const { grant } = await createGrant(
        db,
        {
          customerId: topUp.customer_id,
          currency: topUp.currency,
          grantKey: topUpGrantKey(topUp.id),
          source: 'purchased',
          amount: String(topUp.amount),
          priority: topUp.priority,
          effectiveAt: at,
          expiresAt: topUp.expires_at,
          description: `${topUp.kind === 'recharge' ? 'automatic recharge' : 'top-up'} ${invoice.number ?? invoice.id}`,
        },
        trx,
      );
      await trx('wallet_top_ups').where({ id: topUp.id }).update({ status: 'paid', grant_id: grant.id, settled_at: at });
      await enqueueOutboxEvent(trx, {
        eventType: topUp.kind === 'recharge' ? 'wallet.recharged' : 'wallet.topped_up',
        aggregateType: 'wallet',
        aggregateId: topUp.wallet_id,
        dedupeKey: `wallet.credited:${topUp.id}`,
        payload: { customerId: topUp.customer_id, topUpId: topUp.id, invoiceId: invoice.id, grantId: grant.id, amount, currency: topUp.currency },
      });
      return { status: 'paid', grantId: grant.id, declineCode: null };
    }
    const lastFailure: { failure_code: string | null } | undefined = topUp.invoice_id
      ? await trx('payments').where({ invoice_id: topUp.invoice_id }).orderBy('attempt', 'desc').first('failure_code')
      : undefined;
    const declineCode = lastFailure?.failure_code ?? 'charge_failed';
    if (invoice) await markInvoiceUncollectible(trx, invoice.id);
    await trx('wallet_top_ups').where({ id: topUp.id }).update({ status: 'declined', decline_code: declineCode, settled_at: at });
    await enqueueOutboxEvent(trx, {
      eventType: topUp.kind === 'recharge' ? 'wallet.recharge_failed' : 'wallet.top_up_failed',
      aggregateType: 'wallet',
      aggregateId: topUp.wallet_id,
      dedupeKey: `wallet.purchase_failed:${topUp.id}`,
      payload: { customerId: topUp.customer_id, topUpId: topUp.id, invoiceId: invoice?.id ?? null, amount, currency: topUp.currency, declineCode },
    });
    return { status: 'declined', grantId: null, declineCode };
  });
}

/** The credit a top-up invoice bought, as a refund of that invoice finds it. */
export interface PurchasedCredit {
  readonly topUp: TopUpRow;
  /** Locked for the rest of the caller's transaction. */
  readonly wallet: WalletRow;
  /** The purchased grant; null until the top-up is settled, and for a declined one. */
  readonly grant: GrantRow | null;
}

/**
 * The credit the top-up invoice `invoiceId` bought, with its wallet locked: every draw holds that lock, so what is
 * unspent now stays unspent until the caller commits. Undefined when the invoice is not a top-up's.
 */
export async function lockPurchasedCredit(trx: Knex.Transaction, invoiceId: string): Promise<PurchasedCredit | undefined> {
  const topUp = await trx<TopUpRow>('wallet_top_ups').where({ invoice_id: invoiceId }).first();
  if (!topUp) return undefined;
  const wallet = await lockWallet(trx, topUp.wallet_id);
  return { topUp, wallet, grant: await grantBought(trx, topUp) }; // read under the lock: its remaining is current
}

async function grantBought(db: Db, topUp: TopUpRow): Promise<GrantRow | null> {
  return (topUp.grant_id ? await findGrant(db, topUp.grant_id) : undefined) ?? null;
}

/**
 * How much of the purchase a refund may take back: what is left of its grant. A top-up not settled yet has no
 * grant yet but will get one, so nothing of it is refundable until then. Undefined when it bought no credit at all
 * (declined, its invoice collected later): there is nothing to take back.
 */
export function unspentPurchasedCredit(credit: Pick<PurchasedCredit, 'topUp' | 'grant'>): Dec | undefined {
  if (credit.topUp.status === 'declined') return undefined;
  return credit.grant ? toDecimal(String(credit.grant.remaining)) : ZERO;
}

/** The credit a top-up invoice bought, read without locks (what a listing shows); undefined for other invoices. */
export async function findPurchasedCredit(db: Db, invoiceId: string): Promise<Pick<PurchasedCredit, 'topUp' | 'grant'> | undefined> {
  const topUp = await db<TopUpRow>('wallet_top_ups').where({ invoice_id: invoiceId }).first();
  return topUp && { topUp, grant: await grantBought(db, topUp) };
}

const refundEntryKey = (creditNoteId: string) => `refund:${creditNoteId}`;

/**
 * Takes `amount` of the purchased grant back with the credit note that refunds it, in the credit note's transaction
 * (the caller checked it is unspent): a `refund` ledger entry keyed by the credit note, so it happens exactly once.
 */
export async function takeBackPurchasedCredit(trx: Knex.Transaction, credit: PurchasedCredit, amount: string, creditNote: { id: string; number: string | null }): Promise<void> {
  if (!credit.grant) return;
  await trx('wallet_grants').where({ id: credit.grant.id }).update({ remaining: trx.raw('remaining - ?::numeric', [amount]) });
  await appendEntries(trx, credit.wallet, [
    { kind: 'refund', entryKey: refundEntryKey(creditNote.id), grantId: credit.grant.id, amount: toDecimal(amount).neg(), description: `refunded by credit note ${creditNote.number ?? creditNote.id}` },
  ]);
}

/**
 * A refund the gateway refused (its credit note void, the cash still with us): the credit it took back goes back
 * to the grant, once. Should the grant have expired meanwhile, the next expiry run expires it again.
 */
export async function restoreRefundedCredit(trx: Knex.Transaction, invoiceId: string, creditNoteId: string): Promise<void> {
  const topUp = await trx<TopUpRow>('wallet_top_ups').where({ invoice_id: invoiceId }).first();
  if (!topUp) return;
  const wallet = await lockWallet(trx, topUp.wallet_id);
  const taken = await trx<LedgerRow>('wallet_ledger').where({ wallet_id: wallet.id, entry_key: refundEntryKey(creditNoteId) }).first();
  if (!taken?.grant_id) return;
  const back = toDecimal(String(taken.amount)).neg();
  await trx('wallet_grants').where({ id: taken.grant_id }).update({ remaining: trx.raw('remaining + ?::numeric', [back.toString()]) });
  await appendEntries(trx, wallet, [{ kind: 'refund', entryKey: `refund_failed:${creditNoteId}`, grantId: taken.grant_id, amount: back, description: 'refund failed: credit restored' }]);
}

interface WatchRow {
  wallet_id: string;
  recharge_armed: boolean;
  recharge_crossings: number;
  low_balance_armed: boolean;
  low_balance_crossings: number;
  depleted_armed: boolean;
  depleted_crossings: number;
}

const watchOf = (row: WatchRow): ThresholdWatch => ({
  rechargeArmed: row.recharge_armed,
  rechargeCrossings: row.recharge_crossings,
  lowBalanceArmed: row.low_balance_armed,
  lowBalanceCrossings: row.low_balance_crossings,
  depletedArmed: row.depleted_armed,
  depletedCrossings: row.depleted_crossings,
});

export interface BalanceObservation {
  readonly available: string;
  /** The recharge a crossing requested (pending), if this observation crossed the recharge threshold. */
  readonly rechargeTopUpId: string | null;
  readonly crossed: readonly string[];
}

/**
 * Looks at a wallet's available balance (store/wallets.ts availableBalance: ledger minus open usage) against its
 * thresholds, with the watch row locked, so observers racing for one crossing serialize and only the first sees
 * it. A recharge crossing inserts its top-up under `recharge:<crossing number>` (unique per wallet: the crossing's
 * identity); low-balance and depleted crossings queue their webhook under the same kind of key.
 */
export async function observeWalletBalance(db: Knex, wallet: WalletRow, at: Date): Promise<BalanceObservation> {
  return db.transaction(async (trx) => {
    await trx('wallet_balance_watch').insert({ wallet_id: wallet.id }).onConflict('wallet_id').ignore();
    const watchRow = (await trx<WatchRow>('wallet_balance_watch').where({ wallet_id: wallet.id }).forUpdate().first())!;
    const current = (await trx<WalletRow>('wallets').where({ id: wallet.id }).first())!;
    const available = (await availableBalance(trx, current.customer_id, current.currency)) ?? '0';
    const watch = watchOf(watchRow);
    const observed = observeThresholds(
      available,
      {
        rechargeThreshold: nullableString(current.recharge_threshold),
        rechargeAmount: nullableString(current.recharge_amount),
        lowBalanceThreshold: nullableString(current.low_balance_threshold),
      },
      watch,
    );
    const decision = await withoutRechargePastBalanceLimit(trx, current, watch, observed);
    await trx('wallet_balance_watch')
      .where({ wallet_id: wallet.id })
      .update({
        recharge_armed: decision.watch.rechargeArmed,
        recharge_crossings: decision.watch.rechargeCrossings,
        low_balance_armed: decision.watch.lowBalanceArmed,
        low_balance_crossings: decision.watch.lowBalanceCrossings,
        depleted_armed: decision.watch.depletedArmed,
        depleted_crossings: decision.watch.depletedCrossings,
        last_available: available,
        checked_at: at,
      });
    let rechargeTopUpId: string | null = null;
    const common = { customerId: current.customer_id, currency: current.currency, available };
    for (const crossing of decision.crossed) {
      if (crossing.kind === 'recharge') {
        const { row } = await requestTopUp(trx, {
          customerId: current.customer_id,
          currency: current.currency,
          kind: 'recharge',
          requestKey: `recharge:${crossing.number}`,
          amount: String(current.recharge_amount),
          requestedBy: 'auto_recharge',
        });
        rechargeTopUpId = row.id;
        continue;
      }
      const eventType = crossing.kind === 'low_balance' ? 'wallet.low_balance' : 'wallet.depleted';
      await enqueueOutboxEvent(trx, {
        eventType,
        aggregateType: 'wallet',
        aggregateId: wallet.id,
        dedupeKey: `${eventType}:${wallet.id}:${crossing.number}`,
        payload: {
          ...common,
          ...(crossing.kind === 'low_balance' ? { threshold: formatMoney(toDecimal(String(current.low_balance_threshold)), current.currency) } : {}),
          crossing: crossing.number,
        },
      });
    }
    return { available, rechargeTopUpId, crossed: decision.crossed.map((crossing) => crossing.kind) };
  });
}

/**
 * A recharge is charged before its grant is written: one whose grant would take the balance (with the purchases still
 * pending) past what the wallet holds (MAX_WALLET_BALANCE) was bought all the same, and its paid invoice never became
 * credit (settleTopUp failing on numeric overflow at every retry). Such a crossing is not taken: the recharge stays
 * armed, so the first observation with room for it buys it.
 */
async function withoutRechargePastBalanceLimit(trx: Knex.Transaction, wallet: WalletRow, before: ThresholdWatch, decision: ThresholdDecision): Promise<ThresholdDecision> {
  if (!decision.crossed.some((crossing) => crossing.kind === 'recharge')) return decision;
  // Under the wallet lock, as every balance change and the API's grant (createGrant withinBalanceLimit) hold it: read
  // without it, the check did not wait for a grant in flight, each fit alone, and the recharge was bought and paid
  // beside a grant that took its room. Lock order: the watch row, then the wallet (nothing takes them the other way).
  await lockWallet(trx, wallet.id);
  if (await creditFits(trx, wallet.customer_id, wallet.currency, String(wallet.recharge_amount), await pendingTopUpAmount(trx, wallet.customer_id, wallet.currency))) return decision;
  return {
    watch: { ...decision.watch, rechargeArmed: before.rechargeArmed, rechargeCrossings: before.rechargeCrossings },
    crossed: decision.crossed.filter((crossing) => crossing.kind !== 'recharge'),
  };
}

function nullableString(value: string | null): string | null {
  return value === null || value === undefined ? null : String(value);
}

/**
 * Every wallet of a customer, observed. `rechargeRequested`: this observation crossed a recharge threshold.
 * `purchasePending`: some purchase is still pending (in flight, or one whose wake-up was lost when the process
 * that requested it died): the wallet workflow has work.
 */
export async function observeCustomerWallets(db: Knex, customerId: string, at: Date): Promise<{ rechargeRequested: boolean; purchasePending: boolean }> {
  const wallets = await db<WalletRow>('wallets').where({ customer_id: customerId });
  let rechargeRequested = false;
  for (const wallet of wallets) {
    const observation = await observeWalletBalance(db, wallet, at);
    if (observation.rechargeTopUpId) rechargeRequested = true;
  }
  const purchasePending = rechargeRequested || (wallets.length > 0 && (await pendingTopUpIds(db, customerId)).length > 0);
  return { rechargeRequested, purchasePending };
}

/**
 * The grants whose expiry the wallet workflow times (notice and expiry entry). A `plan_included` grant expires with
 * its billing period, which the period invoice settles: a timer must not zero it before that invoice draws on it.
 */
const TIMED_SOURCES: readonly GrantSource[] = ['purchased', 'promotional', 'goodwill'];

interface ExpiringGrantRow {
  id: string;
  wallet_id: string;
  source: string;
  remaining: string;
  expires_at: Date;
  currency: string;
  customer_id: string;
  grant_expiry_notice: string;
}

/** The customer's grants with something left and an expiry after `at`, with their wallet's notice period. */
async function grantsWithExpiry(db: Db, customerId: string, at: Date): Promise<(ExpiringGrantRow & { noticed: boolean })[]> {
  const rows: (ExpiringGrantRow & { noticed: string | null })[] = await db('wallet_grants as g')
    .join('wallets as w', 'w.id', 'g.wallet_id')
    .leftJoin('wallet_grant_notices as n', 'n.grant_id', 'g.id')
    .where('w.customer_id', customerId)
    .andWhere('g.remaining', '>', 0)
    .whereNotNull('g.expires_at')
    .whereIn('g.source', [...TIMED_SOURCES])
    .andWhere('g.expires_at', '>', at)
    .select('g.id', 'g.wallet_id', 'g.source', 'g.remaining', 'g.expires_at', 'w.currency', 'w.customer_id', 'w.grant_expiry_notice', 'n.grant_id as noticed');
  return rows.map((row) => ({ ...row, noticed: row.noticed !== null }));
}

function noticeAt(grant: { expires_at: Date; grant_expiry_notice: string }): Date {
  return addIntervals(grant.expires_at, parseInterval(grant.grant_expiry_notice), -1);
}

export interface WalletAgenda {
  readonly pendingTopUpIds: string[];
  /** The next moment the workflow has work: a grant's expiry or its notice. Null: nothing scheduled. */
  readonly nextTimerAt: string | null;
}

/** What the wallet workflow has to do now and when it must wake next. */
export async function walletAgenda(db: Knex, customerId: string, at: Date): Promise<WalletAgenda> {
  const [pending, grants, held] = await Promise.all([pendingTopUpIds(db, customerId), grantsWithExpiry(db, customerId, at), heldGrantsRecheck(db, customerId, at)]);
  let next: Date | null = held;
  for (const grant of grants) {
    const candidates = [grant.expires_at, ...(grant.noticed ? [] : [noticeAt(grant)])];
    for (const candidate of candidates) if (!next || candidate < next) next = candidate;
  }
  return { pendingTopUpIds: pending, nextTimerAt: next ? next.toISOString() : null };
}

/** Time to look again at grants held past their expiry (store/wallets.ts expireGrants) until their usage is invoiced. */
const HELD_GRANT_RECHECK_MS = 60 * 60_000;

async function heldGrantsRecheck(db: Knex, customerId: string, at: Date): Promise<Date | null> {
  let next: Date | null = null;
  for (const wallet of await db<WalletRow>('wallets').where({ customer_id: customerId })) {
    const periodEnd = await heldGrantsRecheckAt(db, wallet, at);
    if (!periodEnd) continue;
    // Just after the holding period ends its invoice is due; once that moment has passed, look again hourly.
    const candidate = periodEnd > at ? new Date(periodEnd.getTime() + 60_000) : new Date(at.getTime() + HELD_GRANT_RECHECK_MS);
    if (!next || candidate < next) next = candidate;
  }
  return next;
}

/**
 * The wallet's timers at `at`: a `grant.expiring` notice (once per grant) for each grant whose notice time has
 * come, then the expiry ledger entry of every grant whose expiry has passed (expireGrants). Returns how many of each.
 */
export async function runWalletTimers(db: Knex, customerId: string, at: Date): Promise<{ notices: number; expired: number }> {
  let notices = 0;
  for (const grant of await grantsWithExpiry(db, customerId, at)) {
    if (grant.noticed || noticeAt(grant) > at) continue;
    await db.transaction(async (trx) => {
      const [inserted] = await trx('wallet_grant_notices').insert({ grant_id: grant.id, expires_at: grant.expires_at, notified_at: at }).onConflict('grant_id').ignore().returning('grant_id');
      if (!inserted) return;
      notices += 1;
      await enqueueOutboxEvent(trx, {
        eventType: 'grant.expiring',
        aggregateType: 'wallet_grant',
        aggregateId: grant.id,
        dedupeKey: `grant.expiring:${grant.id}`,
        payload: {
          customerId: grant.customer_id,
          grantId: grant.id,
          source: grant.source,
          remaining: formatMoney(toDecimal(String(grant.remaining)), grant.currency),
          currency: grant.currency,
          expiresAt: grant.expires_at.toISOString(),
        },
      });
    });
  }
  let expired = 0;
  const wallets = await db<WalletRow>('wallets').where({ customer_id: customerId });
  for (const wallet of wallets) expired += (await expireGrants(db, wallet.id, at, TIMED_SOURCES)).length;
  return { notices, expired };
}

/** How long before a grant expires its `grant.expiring` notice goes out (ISO 8601 duration, P7D by default). */
export async function updateGrantExpiryNotice(db: Db, walletId: string, notice: string): Promise<void> {
  await db('wallets').where({ id: walletId }).update({ grant_expiry_notice: notice });
}

export async function grantExpiryNoticeOf(db: Db, walletId: string): Promise<string> {
  const row: { grant_expiry_notice: string } | undefined = await db('wallets').where({ id: walletId }).first('grant_expiry_notice');
  return row?.grant_expiry_notice ?? 'P7D';
}
