/** The catalog: billable metrics and the immutable plan versions that price them. */
import type { Knex } from 'knex';

export interface PlanRow {
  id: string;
  code: string;
  version: number;
  name: string;
  currency: string;
  billing_interval: string;
  trial_period: string | null;
  flat_fee: string;
  charges: unknown[];
  settings: Record<string, unknown>;
  created_at: Date;
}

export async function findPlan(db: Knex | Knex.Transaction, planId: string): Promise<PlanRow> {
  const plan = await db<PlanRow>('plans').where({ id: planId }).first();
  if (!plan) throw new Error(`plan ${planId} not found`);
  return plan;
}

/** A plan by code: the given version, or the latest one when no version is given. */
export async function findPlanVersion(db: Knex | Knex.Transaction, code: string, version?: number): Promise<PlanRow | undefined> {
  const query = db<PlanRow>('plans').where({ code });
  return version === undefined ? query.orderBy('version', 'desc').first() : query.where({ version }).first();
}

export type Aggregation = 'count' | 'sum' | 'max' | 'unique_count' | 'latest';

export interface MetricRow {
  id: string;
  code: string;
  name: string;
  event_type: string;
  aggregation: Aggregation;
  property: string | null;
  filters: Record<string, string | number | boolean>;
  unit_cost: string | null;
  created_at: Date;
}

/** Aggregations that read a numeric property (count and unique_count do not need a number). */
export const NUMERIC_AGGREGATIONS: ReadonlySet<Aggregation> = new Set(['sum', 'max', 'latest']);

export async function findMetricsByCode(db: Knex | Knex.Transaction, codes: readonly string[]): Promise<MetricRow[]> {
  if (codes.length === 0) return [];
  return db<MetricRow>('billable_metrics').whereIn('code', codes);
}

/**
 * Every metric, indexed by the event type it reads, refreshed at most every `maxAgeMs`. Ingestion validates
 * each event against the metrics of its type; thousands of metrics fit comfortably in memory.
 */
export class MetricCatalog {
  private byEventType = new Map<string, MetricRow[]>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly db: Knex,
    private readonly maxAgeMs = 5_000,
  ) {}

  async metricsFor(eventTypes: Iterable<string>): Promise<Map<string, MetricRow[]>> {
    if (Date.now() - this.loadedAt > this.maxAgeMs) await this.reload();
    const result = new Map<string, MetricRow[]>();
    for (const type of eventTypes) result.set(type, this.byEventType.get(type) ?? []);
    return result;
  }

  /** Called after a metric is created so the next event sees it at once. */
  invalidate(): void {
    this.loadedAt = 0;
  }

  private reload(): Promise<void> {
    this.loading ??= (async () => {
      const rows = await this.db<MetricRow>('billable_metrics').select('*');
      const next = new Map<string, MetricRow[]>();
      for (const row of rows) next.set(row.event_type, [...(next.get(row.event_type) ?? []), row]);
      this.byEventType = next;
      this.loadedAt = Date.now();
    })().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }
}
