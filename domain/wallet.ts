/**
 * Prepaid credit: which grants pay for what, in which order (issue 12, docs/wallets.md). Pure.
 *
 * Burn-down order: lowest priority number first, then the earliest expiry (a grant without expiry last), then
 * the oldest, then the id (so the order is total and the same everywhere). A grant pays only while it is in
 * effect (effective_at <= at < expires_at) and, when it is scoped, only for its metrics' usage lines.
 */
import { Dec, formatMoney, minorUnitExponent, toDecimal, ZERO } from './money';

export const GRANT_SOURCES = ['purchased', 'promotional', 'plan_included', 'goodwill'] as const;
export type GrantSource = (typeof GRANT_SOURCES)[number];

export interface GrantState {
  readonly id: string;
  /** What is left of the grant (decimal string). */
  readonly remaining: string;
  readonly priority: number;
  readonly effectiveAt: Date;
  readonly expiresAt: Date | null;
  readonly createdAt: Date;
  /** null: pays for any usage; else only usage of these metrics. */
  readonly metricCodes: readonly string[] | null;
}

/** The grants in the order they are drawn on. */
export function burnDownOrder<G extends GrantState>(grants: readonly G[]): G[] {
  const expiry = (grant: GrantState): number => (grant.expiresAt ? grant.expiresAt.getTime() : Number.POSITIVE_INFINITY);
  return [...grants].sort(
    (a, b) =>
      a.priority - b.priority ||
      expiry(a) - expiry(b) ||
      a.createdAt.getTime() - b.createdAt.getTime() ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/** A stretch of time usage happened in: a grant in effect at any moment of it may pay for that usage. */
export interface UsageSpan {
  readonly from: Date;
  readonly to: Date;
}

/**
 * Whether a grant may pay for a usage line of `metricCode` (null: a line of no metric) that accrued during `span`:
 * it was in effect at some moment of the span (effective before its end, not expired before its start), it is
 * in scope, and something is left (an expiry already recorded leaves nothing).
 */
export function grantPays(grant: GrantState, span: UsageSpan, metricCode: string | null): boolean {
  const inEffect = grant.effectiveAt.getTime() < span.to.getTime() && (grant.expiresAt === null || span.from.getTime() < grant.expiresAt.getTime());
  const inScope = grant.metricCodes === null || (metricCode !== null && grant.metricCodes.includes(metricCode));
  return inEffect && inScope && toDecimal(grant.remaining).gt(ZERO);
}

/** Something to pay: an invoice's usage line (its rounded amount) or the usage of a metric. */
export interface CreditCharge {
  readonly metricCode: string | null;
  readonly amount: string;
  /** The invoice line it pays (domain/rerating.ts lineKey); absent: the metric's usage line. */
  readonly lineKey?: string;
}

/** What one grant (null: the overdraft) paid of one invoice line: a re-rating gives back only that (docs/wallets.md). */
export interface LineDraw {
  readonly grantId: string | null;
  readonly lineKey: string;
  readonly amount: string;
}

export interface CreditDraw {
  /** null: drawn past the grants, into the overdraft the wallet allows. */
  readonly grantId: string | null;
  readonly amount: string;
}

export interface CreditDrawing {
  readonly draws: readonly CreditDraw[];
  /** What the grants (and the overdraft) cover, and what is left to pay. */
  readonly covered: string;
  readonly uncovered: string;
}

export interface DrawRequest {
  readonly currency: string;
  readonly grants: readonly GrantState[];
  readonly charges: readonly CreditCharge[];
  /** When the usage accrued (an invoice's usage period). */
  readonly during: UsageSpan;
  /**
   * How much the wallet may still go below zero (its overdraft limit plus its balance when that is negative,
   * never below 0). Only unscoped usage may be drawn into the overdraft.
   */
  readonly overdraftAvailable: string;
  /**
   * For grants expiring inside the usage span: at each such expiry, what the usage before it made payable. A grant
   * pays, together with every grant expiring no later, at most that much: usage after its expiry is not its to pay.
   * Absent (or no entry at or after a grant's expiry): the grant may pay any of the span's usage.
   */
  readonly accruedBefore?: readonly { readonly at: Date; readonly payable: string }[];
}

/**
 * Draws credits for the charges, line by line in order, each from the grants that may pay for it in burn-down
 * order; then, what is still unpaid from the overdraft. Amounts stay in the currency's minor unit: a draw is at
 * most what is due (already rounded) and at most what the grant holds, rounded down so a grant never pays more
 * than it has. One draw per grant (a grant drawn for several lines is summed).
 */
export function drawCredits(request: DrawRequest): CreditDrawing {
  return drawCreditsByLine(request).drawing;
}

/** The line a charge pays, as re-rating names it: its own key, else its metric's usage line. */
export function chargeLineKey(charge: CreditCharge): string {
  return charge.lineKey ?? `usage:${charge.metricCode}`;
}

/**
 * drawCredits, and what each grant (and the overdraft) paid of each charge's line: the draw records it, so a
 * re-rating that lowers a line gives back only to the grants that paid that line, never to one of another scope.
 */
export function drawCreditsByLine(request: DrawRequest): { drawing: CreditDrawing; lineDraws: LineDraw[] } {
  const lineDraws = new Map<string, { grantId: string | null; lineKey: string; amount: Dec }>();
  const paidOfLine = (grantId: string | null, charge: CreditCharge, amount: Dec) => {
    const key = `${grantId ?? ''}|${chargeLineKey(charge)}`;
    const entry = lineDraws.get(key) ?? { grantId, lineKey: chargeLineKey(charge), amount: ZERO };
    lineDraws.set(key, { ...entry, amount: entry.amount.plus(amount) });
  };
  const remaining = new Map(request.grants.map((grant) => [grant.id, toDecimal(grant.remaining)]));
  const ordered = burnDownOrder(request.grants);
  const drawn = new Map<string, Dec>();
  const caps = (request.accruedBefore ?? []).map((checkpoint) => ({ at: checkpoint.at.getTime(), left: toDecimal(checkpoint.payable) }));
  const capsOf = (grant: GrantState) => (grant.expiresAt ? caps.filter((cap) => cap.at >= grant.expiresAt!.getTime()) : []);
  let overdraft = toDecimal(request.overdraftAvailable);
  let overdrawn = ZERO;
  let covered = ZERO;
  let uncovered = ZERO;
  for (const charge of request.charges) {
    let due = toDecimal(charge.amount);
    if (due.lte(ZERO)) continue;
    for (const grant of ordered) {
      if (due.isZero()) break;
      if (!grantPays({ ...grant, remaining: remaining.get(grant.id)!.toString() }, request.during, charge.metricCode)) continue;
      const available = remaining.get(grant.id)!.toDecimalPlaces(exponentOf(request.currency), Dec.ROUND_DOWN);
      const grantCaps = capsOf(grant);
      const take = grantCaps.reduce((least, cap) => Dec.min(least, cap.left), Dec.min(available, due));
      if (take.lte(ZERO)) continue;
      for (const cap of grantCaps) cap.left = cap.left.minus(take);
      remaining.set(grant.id, remaining.get(grant.id)!.minus(take));
      drawn.set(grant.id, (drawn.get(grant.id) ?? ZERO).plus(take));
      paidOfLine(grant.id, charge, take);
      due = due.minus(take);
      covered = covered.plus(take);
    }
    const fromOverdraft = Dec.min(due, overdraft.toDecimalPlaces(exponentOf(request.currency), Dec.ROUND_DOWN));
    if (fromOverdraft.gt(ZERO)) {
      overdraft = overdraft.minus(fromOverdraft);
      overdrawn = overdrawn.plus(fromOverdraft);
      paidOfLine(null, charge, fromOverdraft);
      due = due.minus(fromOverdraft);
      covered = covered.plus(fromOverdraft);
    }
    uncovered = uncovered.plus(due);
  }
  const draws: CreditDraw[] = ordered
    .filter((grant) => drawn.has(grant.id))
    .map((grant) => ({ grantId: grant.id, amount: formatMoney(drawn.get(grant.id)!, request.currency) }));
  if (overdrawn.gt(ZERO)) draws.push({ grantId: null, amount: formatMoney(overdrawn, request.currency) });
  return {
    drawing: { draws, covered: formatMoney(covered, request.currency), uncovered: formatMoney(uncovered, request.currency) },
    lineDraws: [...lineDraws.values()].map((entry) => ({ grantId: entry.grantId, lineKey: entry.lineKey, amount: formatMoney(entry.amount, request.currency) })),
  };
}

/** A grant (null: the overdraft) a draw took from, with what it still holds of that draw. */
export interface DrawPayer {
  readonly grantId: string | null;
  /** What it still holds of the draw (what it paid, less what was given back of it). */
  readonly held: string;
  /** The grant's scope (null: any usage). The overdraft pays any line. */
  readonly metricCodes: readonly string[] | null;
}

/** A line a re-rating lowers, by how much (positive). */
export interface LoweredLine {
  readonly lineKey: string;
  readonly metricCode: string | null;
  readonly amount: string;
}

/**
 * What a re-rating's credit gives back to a draw (pure): for each lowered line in order, to the grants that paid that
 * line, newest draw first, up to what each paid of it less what earlier give-backs returned of it, and never more than
 * the grant still holds of the draw nor `cap` in all. The rest of the credit is the customer's cash: usage a
 * threshold invoice charged to the card, or another grant paid, is not given to this one (a tokens-only grant is
 * never handed credit for calls). `paid` undefined: a draw recorded before draws kept their lines (migration 0800);
 * then any grant whose scope covers the line's metric is taken to have paid it, up to what it holds (the rule before,
 * minus grants of another scope).
 */
export function lineGiveBacks(request: {
  readonly currency: string;
  readonly lowered: readonly LoweredLine[];
  /** In the order they were drawn (oldest first). */
  readonly payers: readonly DrawPayer[];
  readonly paid: readonly LineDraw[] | undefined;
  readonly givenBefore: readonly LineDraw[];
  readonly cap: string;
}): LineDraw[] {
  const key = (grantId: string | null, lineKey: string) => `${grantId ?? ''}|${lineKey}`;
  const sumBy = (rows: readonly LineDraw[]) => {
    const sums = new Map<string, Dec>();
    for (const row of rows) sums.set(key(row.grantId, row.lineKey), (sums.get(key(row.grantId, row.lineKey)) ?? ZERO).plus(toDecimal(row.amount)));
    return sums;
  };
  const paid = request.paid ? sumBy(request.paid) : undefined;
  const given = sumBy(request.givenBefore);
  const held = new Map(request.payers.map((payer) => [payer.grantId, Dec.max(toDecimal(payer.held), ZERO)]));
  const newestFirst = [...request.payers].reverse();
  let capLeft = Dec.max(toDecimal(request.cap), ZERO);
  const backs: LineDraw[] = [];
  for (const line of request.lowered) {
    let lineLeft = toDecimal(line.amount);
    for (const payer of newestFirst) {
      if (capLeft.lte(ZERO) || lineLeft.lte(ZERO)) break;
      const heldLeft = held.get(payer.grantId)!;
      const paidOfLine = paid ? (paid.get(key(payer.grantId, line.lineKey)) ?? ZERO) : coversLine(payer, line) ? heldLeft : ZERO;
      const owed = paidOfLine.minus(given.get(key(payer.grantId, line.lineKey)) ?? ZERO);
      const back = Dec.min(capLeft, lineLeft, owed, heldLeft);
      if (back.lte(ZERO)) continue;
      held.set(payer.grantId, heldLeft.minus(back));
      given.set(key(payer.grantId, line.lineKey), (given.get(key(payer.grantId, line.lineKey)) ?? ZERO).plus(back));
      capLeft = capLeft.minus(back);
      lineLeft = lineLeft.minus(back);
      backs.push({ grantId: payer.grantId, lineKey: line.lineKey, amount: formatMoney(back, request.currency) });
    }
  }
  return backs;
}

/** A draw recorded without its lines: whether this payer could have paid the line (its scope, as grantPays). */
function coversLine(payer: DrawPayer, line: LoweredLine): boolean {
  if (payer.grantId === null || payer.metricCodes === null) return true;
  return line.metricCode !== null && payer.metricCodes.includes(line.metricCode);
}

function exponentOf(currency: string): number {
  return minorUnitExponent(currency);
}

/**
 * When the balance runs out at the current burn rate: `spent` over the `elapsedMs` of the period so far,
 * extrapolated linearly. Null when nothing is being spent or nothing is left.
 */
export function projectedRunOut(balance: string, spent: string, elapsedMs: number, now: Date): Date | null {
  const left = toDecimal(balance);
  const burned = toDecimal(spent);
  if (left.lte(ZERO) || burned.lte(ZERO) || elapsedMs <= 0) return null;
  const msLeft = left.div(burned).times(elapsedMs).floor().toNumber();
  return new Date(now.getTime() + msLeft);
}
