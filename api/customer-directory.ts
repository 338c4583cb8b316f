import type { Database } from '../store/database';
import { findCustomerIdsByExternalId } from '../store/customers';

/**
 * External customer id -> our id, for ingestion. Customer ids never change, so found mappings are cached
 * (bounded); unknown ids are asked again every time, so a customer created a moment ago is found.
 */
export class CustomerDirectory {
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly db: Database,
    private readonly maxEntries = 100_000,
  ) {}

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
        if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
        this.cache.set(row.external_id, row.id);
      }
    }
    return result;
  }
}
