/**
 * Entitlements: what a plan lets a customer do, and the answer to "may this customer do X right now?" (issue 12,
 * docs/wallets.md). Pure: the caller supplies the feature definitions, the period's usage (from the same running
 * totals the usage preview and invoices read) and the wallet balance.
 *
 * A plan declares features in `settings.features`:
 * - `boolean`: on for every subscription of the plan (`sso`);
 * - `metered`: a metric's usage in the current period against a limit (`api_calls`: 10,000); a null limit is
 *   unlimited. With `enforcement: 'hard'` (the default) ingestion refuses an event that would take the usage past
 *   the limit, so the answer and ingestion agree: `has_access` is false exactly when the next event of one unit
 *   would be refused.
 * - `wallet`: backed by the customer's prepaid balance in the plan's currency; access while it is above zero.
 */
import { Dec, toDecimal } from './money';

export type FeatureKind = 'boolean' | 'metered' | 'wallet';

export type FeatureDefinition =
  | { readonly code: string; readonly kind: 'boolean' }
  | {
      readonly code: string;
      readonly kind: 'metered';
      readonly metricCode: string;
      /** Units per period, a decimal string; null is unlimited. */
      readonly limit: string | null;
      /** `hard` (default): ingestion refuses what would pass the limit. `soft`: the answer only reports it. */
      readonly enforcement?: 'hard' | 'soft';
    }
  | { readonly code: string; readonly kind: 'wallet' };

/** The features a plan version declares in its settings (none when it declares none). */
export function planFeatures(settings: unknown): FeatureDefinition[] {
  return [...(((settings ?? {}) as { features?: FeatureDefinition[] }).features ?? [])];
}

/** Metrics whose usage only grows by each event's own amount: a limit on them can be checked event by event. */
export const LIMITABLE_AGGREGATIONS: ReadonlySet<string> = new Set(['count', 'sum']);

export interface EntitlementInputs {
  /** The period's usage of a metered feature's metric (decimal string); ignored for other kinds. */
  readonly usage?: string;
  /** When the current period ends: when a metered usage starts again from zero. */
  readonly periodEnd: Date | null;
  /** The wallet balance in the plan's currency (decimal string) for a wallet-backed feature, when the customer has a wallet. */
  readonly balance: string | null;
  /**
   * A metered feature's usage is refused now (a spending cap of its subscription stops its metric's type): the next
   * call is not taken whatever room the limit leaves. Ignored for other kinds: a boolean feature is no usage.
   */
  readonly usageRefused?: boolean;
}

export interface Entitlement {
  readonly feature: string;
  /** null: no current plan of the customer declares the feature. */
  readonly kind: FeatureKind | null;
  readonly has_access: boolean;
  readonly usage: string | null;
  readonly limit: string | null;
  readonly balance: string | null;
  readonly resets_at: string | null;
}

/** The answer for one feature of a subscription in a granting status. */
export function decideEntitlement(feature: FeatureDefinition, inputs: EntitlementInputs): Entitlement {
  const resetsAt = inputs.periodEnd ? inputs.periodEnd.toISOString() : null;
  switch (feature.kind) {
    case 'boolean':
      return { feature: feature.code, kind: 'boolean', has_access: true, usage: null, limit: null, balance: null, resets_at: null };
    case 'metered': {
      const usage = inputs.usage ?? '0';
      const hasAccess = !inputs.usageRefused && (feature.limit === null || toDecimal(usage).lt(toDecimal(feature.limit)));
      return { feature: feature.code, kind: 'metered', has_access: hasAccess, usage, limit: feature.limit, balance: inputs.balance, resets_at: resetsAt };
    }
    case 'wallet': {
      const hasAccess = inputs.balance !== null && toDecimal(inputs.balance).gt(0);
      return { feature: feature.code, kind: 'wallet', has_access: hasAccess, usage: null, limit: null, balance: inputs.balance, resets_at: null };
    }
  }
}

/** A feature the customer's plans do not declare: no access, nothing to report. */
export function absentEntitlement(code: string): Entitlement {
  return { feature: code, kind: null, has_access: false, usage: null, limit: null, balance: null, resets_at: null };
}

/** One event's contribution to a limited metric: 1 per event for count, its value for sum. */
export interface LimitedMetric {
  readonly metricId: string;
  readonly aggregation: 'count' | 'sum';
  readonly property: string | null;
  readonly limit: string;
}

/**
 * Which events of a batch fit under the limits, in batch order: an event that would take a limited metric's usage
 * past its limit is refused and does not count; later, smaller ones may still fit. `contributions[i]` holds the
 * amount event i adds to each limited metric it feeds (absent: it feeds none). `keys[i]` names event i's identity
 * (customer and event id): a copy of an event already counted adds nothing (it is stored once), but a copy of a
 * refused one is judged on its own, so repeating an id in a batch never carries usage past a limit.
 * Returns the refused indexes.
 */
export function eventsOverLimit(
  startingUsage: ReadonlyMap<string, string>,
  limits: ReadonlyMap<string, string>,
  contributions: readonly (ReadonlyMap<string, Dec> | undefined)[],
  keys: readonly string[] = [],
): Set<number> {
  const usage = new Map([...startingUsage].map(([metricId, value]) => [metricId, toDecimal(value)]));
  const refused = new Set<number>();
  // The identities of the copies let through: the first of them is the one the insert stores.
  const counted = new Set<string>();
  contributions.forEach((adds, index) => {
    const key = keys[index];
    if (key !== undefined && counted.has(key)) return;
    if (adds) {
      const fits = [...adds].every(([metricId, amount]) => {
        const limit = limits.get(metricId);
        // A corrections sum may run negative; its quantity (what the limit bounds) is floored at 0.
        const before = usage.get(metricId) ?? toDecimal('0');
        // The limit refuses what raises the usage past it. An event that raises nothing (a correction, a zero) always
        // fits: a plan change to a lower limit can leave the usage above it, and refusing a correction then lost it
        // and billed the usage it took back.
        return limit === undefined || amount.lte(0) || Dec.max(before.plus(amount), 0).lte(toDecimal(limit));
      });
      if (!fits) {
        refused.add(index);
        return;
      }
      for (const [metricId, amount] of adds) usage.set(metricId, (usage.get(metricId) ?? toDecimal('0')).plus(amount));
    }
    if (key !== undefined) counted.add(key);
  });
  return refused;
}

/** Where one subscription of a customer prices some event types (store/usage.ts `pricedStretchesOf`). */
export interface SubscriptionTypesStretch {
  readonly subscriptionId: string;
  readonly from: Date;
  /** Null: it goes on. */
  readonly until: Date | null;
  readonly eventTypes: ReadonlySet<string>;
}

/**
 * The parts of a limit's window whose events of `eventType` are its own subscription's: everywhere except where
 * another subscription of the customer prices the type. At most one subscription prices a type at an instant, so an
 * event there is that one's usage, billed (and limited) by its plan; counted here it spent this limit on usage of
 * another plan and refused it. Where no subscription prices the type the event bills nothing and every limit on it
 * holds (a plan may limit a metric no plan charges), as every block and cap refuses it (usageStopAt). In time order;
 * empty when another subscription prices the type over the whole window.
 */
export function ownLimitWindows<W extends { readonly from: Date; readonly to: Date }>(
  window: W,
  subscriptionId: string,
  eventType: string,
  stretches: readonly SubscriptionTypesStretch[],
): W[] {
  let pieces: W[] = [window];
  for (const other of stretches) {
    if (other.subscriptionId === subscriptionId || !other.eventTypes.has(eventType)) continue;
    pieces = pieces.flatMap((piece) => [
      ...(other.from > piece.from ? [{ ...piece, to: other.from < piece.to ? other.from : piece.to }] : []),
      ...(other.until !== null && other.until < piece.to ? [{ ...piece, from: other.until > piece.from ? other.until : piece.from }] : []),
    ]);
  }
  return pieces.filter((piece) => piece.from < piece.to).sort((a, b) => a.from.getTime() - b.from.getTime());
}
