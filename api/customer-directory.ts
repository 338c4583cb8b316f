import type { Database } from '../store/database';
import { findCustomerIdsByExternalId } from '../store/customers';
import { firstSubscriptionStartsSettled } from '../store/subscription-starts';

/**
 * External customer id -> our id, for ingestion. Customer ids never change, so found mappings are cached
 * (bounded); unknown ids are asked again every time, so a customer created a moment ago is found.
 */
export class CustomerDirectory {
  private readonly cache = new Map<string, string>();
  private readonly firstStarts: FirstSubscriptionStarts;

  constructor(
    private readonly db: Database,
    private readonly maxEntries = 100_000,
  ) {
    this.firstStarts = new FirstSubscriptionStarts(db, maxEntries);
  }

  async resolve(externalIds: readonly string[]): Promise<Map<string, string>> {
    const result = new Map<string, string>();
    const missing: string[] = [];
    for (const externalId of new Set(externalIds)) {
      const id = this.cache.get(externalId);
      if (id) result.set(externalId, id);
      else missing.push(externalId);
    }
    if (missing.length) {
      const rows = await findCustomerIdsByExternalId(this.db, missing);
      for (const row of rows) {
        result.set(row.external_id, row.id);
        remember(this.cache, row.external_id, row.id, this.maxEntries);
      }
    }
    return result;
  }

  /**
   * Each customer's first subscription start, possibly stale: never earlier than the truth (see
   * FirstSubscriptionStarts). Good for accepting an event; refuse one only after `freshFirstStarts` agrees.
   */
  cachedFirstStarts(customerIds: readonly string[]): Promise<Map<string, Date>> {
    return this.firstStarts.cached(customerIds);
  }

  /** The first subscription starts as Postgres has them now (and the cache brought up to date). */
  freshFirstStarts(customerIds: readonly string[]): Promise<Map<string, Date>> {
    return this.firstStarts.fresh(customerIds);
  }
}

/**
 * Customer id -> earliest subscription start, cached for ingestion (one Postgres read per batch before).
 *
 * Why a stale entry is safe: a subscription's start never moves, and a subscription past `scheduled` is never
 * removed; only such a settled start is cached (a `scheduled` row whose workflow failed to start is deleted again,
 * so its start is read each time). A new subscription can only make a customer's first start earlier or leave it,
 * so a cached start is never earlier than the truth, and an event at or after it is certainly after the true first
 * start: accepting it is right. An event before the cached start may be after a newer, earlier subscription's start
 * (created by this or another API process a moment ago), so ingestion refuses it only after re-reading Postgres
 * (`fresh`). A customer with no subscription is never cached: remembering "none" would accept events before a
 * subscription created later, which no period could bill. Only bench/test fixtures move a start (store/bulk-fixtures).
 */
class FirstSubscriptionStarts {
  private readonly starts = new Map<string, Date>();

  constructor(
    private readonly db: Database,
    private readonly maxEntries: number,
  ) {}

  async cached(customerIds: readonly string[]): Promise<Map<string, Date>> {
    const result = new Map<string, Date>();
    const missing: string[] = [];
    for (const customerId of new Set(customerIds)) {
      const start = this.starts.get(customerId);
      if (start) result.set(customerId, start);
      else missing.push(customerId);
    }
    if (missing.length) for (const [customerId, start] of await this.fresh(missing)) result.set(customerId, start);
    return result;
  }

  async fresh(customerIds: readonly string[]): Promise<Map<string, Date>> {
    const result = new Map<string, Date>();
    for (const [customerId, { start, settled }] of await firstSubscriptionStartsSettled(this.db, customerIds)) {
      result.set(customerId, start);
      if (settled) remember(this.starts, customerId, start, this.maxEntries);
      else this.starts.delete(customerId);
    }
    return result;
  }
}

/** Sets an entry, dropping the oldest one when the cache is full. */
function remember<V>(cache: Map<string, V>, key: string, value: V, maxEntries: number): void {
  if (!cache.has(key) && cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
}
