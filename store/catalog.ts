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
/** The largest version the `plans.version` column (a Postgres integer) holds. */
const MAX_PLAN_VERSION = 2_147_483_647;

export async function findPlanVersion(db: Knex | Knex.Transaction, code: string, version?: number): Promise<PlanRow | undefined> {
  // A larger version names no plan; asked, Postgres refused the comparison (a 500 on every route that takes one).
  if (version !== undefined && version > MAX_PLAN_VERSION) return undefined;
  const query = db<PlanRow>('plans').where({ code });
  return version === undefined ? query.orderBy('version', 'desc').first() : query.where({ version }).first();
}

/** Every plan version, grouped by code with the newest version first. */
export async function listPlanVersions(db: Knex | Knex.Transaction): Promise<PlanRow[]> {
  return db<PlanRow>('plans').orderBy([{ column: 'code' }, { column: 'version', order: 'desc' }]);
}

/** What a new plan version prices; its version number is assigned on publish. */
export interface PlanVersionDraft {
  readonly code: string;
  readonly name: string;
  readonly currency: string;
  readonly billingInterval: string;
  readonly trialPeriod: string | null;
  readonly flatFee: string;
  readonly charges: readonly unknown[];
  readonly settings: Record<string, unknown>;
}

/**
 * Publishes the next version of a plan code (1 for a new code). Plans are immutable: subscriptions keep the
 * version they point at. Two concurrent publishes of one code pick the same number; the unique (code, version)
 * constraint refuses the second with a unique violation (23505) for the caller to report.
 */
export async function publishPlanVersion(db: Knex, draft: PlanVersionDraft): Promise<PlanRow> {
  return db.transaction(async (trx) => {
    const latest = await trx<PlanRow>('plans').where({ code: draft.code }).max<{ max: number | null }>('version as max').first();
    const [inserted] = await trx<PlanRow>('plans')
      .insert({
        code: draft.code,
        version: (latest?.max ?? 0) + 1,
        name: draft.name,
        currency: draft.currency,
        billing_interval: draft.billingInterval,
        trial_period: draft.trialPeriod,
        flat_fee: draft.flatFee,
        charges: JSON.stringify(draft.charges) as unknown as unknown[],
        settings: draft.settings,
      })
      .returning('*');
    return inserted;
  });
}

/** `prorated_sum` / `prorated_latest`: seat-like units prorated within the period (domain/seat-metrics.ts). */
export type Aggregation = 'count' | 'sum' | 'max' | 'unique_count' | 'latest' | 'prorated_sum' | 'prorated_latest';

export interface MetricRow {
  id: string;
  code: string;
  name: string;
  event_type: string;
  aggregation: Aggregation;
  property: string | null;
  filters: Record<string, string | number | boolean>;
  unit_cost: string | null;
  /** A corrections metric: its values may be negative (a sum metric only; a net negative period bills 0). */
  allow_negative: boolean;
  /** Event properties whose combinations a dimensional charge prices ([] for an ordinary metric). */
  group_by: string[];
  created_at: Date;
}

/** Aggregations that read a numeric property (count and unique_count do not need a number). */
export const NUMERIC_AGGREGATIONS: ReadonlySet<Aggregation> = new Set(['sum', 'max', 'latest', 'prorated_sum', 'prorated_latest']);

/**
 * Whether a metric's property must be a number on every event it reads: sum/max/latest aggregate it, and a
 * count metric's property is the per-event value a percentage charge prices.
 */
export function readsNumericProperty(metric: Pick<MetricRow, 'aggregation' | 'property'>): boolean {
  return NUMERIC_AGGREGATIONS.has(metric.aggregation) || (metric.aggregation === 'count' && metric.property !== null);
}

export async function findMetricsByCode(db: Knex | Knex.Transaction, codes: readonly string[]): Promise<MetricRow[]> {
  if (codes.length === 0) return [];
  return db<MetricRow>('billable_metrics').whereIn('code', codes);
}

export interface NewMetric {
  readonly code: string;
  readonly name: string;
  readonly eventType: string;
  readonly aggregation: Aggregation;
  readonly property: string | null;
  readonly filters: Record<string, string | number | boolean>;
  readonly unitCost: string | null;
  readonly allowNegative: boolean;
  readonly groupBy?: readonly string[];
}

/** Creates a metric; undefined when a metric with that code already exists (metric codes never change meaning). */
export async function createMetric(db: Knex | Knex.Transaction, metric: NewMetric): Promise<MetricRow | undefined> {
  const [row] = await db<MetricRow>('billable_metrics')
    .insert({
      code: metric.code,
      name: metric.name,
      event_type: metric.eventType,
      aggregation: metric.aggregation,
      property: metric.property,
      filters: metric.filters,
      unit_cost: metric.unitCost,
      allow_negative: metric.allowNegative,
      group_by: JSON.stringify(metric.groupBy ?? []) as unknown as string[],
    })
    .onConflict('code')
    .ignore()
    .returning('*');
  return row;
}

export async function listMetrics(db: Knex | Knex.Transaction): Promise<MetricRow[]> {
  return db<MetricRow>('billable_metrics').orderBy('code');
}

/**
 * Every metric, indexed by the event type it reads, refreshed at most every `maxAgeMs`. Ingestion validates
 * each event against the metrics of its type; thousands of metrics fit comfortably in memory.
 */
export class MetricCatalog {
  private byEventType = new Map<string, MetricRow[]>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;
  /** Bumped by `invalidate()`: a reload that began before it may have read the catalog without the new metric. */
  private generation = 0;

  constructor(
    private readonly db: Knex,
    private readonly maxAgeMs = 5_000,
  ) {}

  async metricsFor(eventTypes: Iterable<string>): Promise<Map<string, MetricRow[]>> {
    if (Date.now() - this.loadedAt > this.maxAgeMs) {
      await this.reload();
      // The reload joined here may have begun before the last invalidation (it then leaves loadedAt at 0): read once
      // more, so the events of a metric just created are checked against it.
      if (this.loadedAt === 0) await this.reload();
    }
    const result = new Map<string, MetricRow[]>();
    for (const type of eventTypes) result.set(type, this.byEventType.get(type) ?? []);
    return result;
  }

  /** Called after a metric is created so the next event sees it at once. */
  invalidate(): void {
    this.generation += 1;
    this.loadedAt = 0;
  }

  private reload(): Promise<void> {
    this.loading ??= (async () => {
      const generation = this.generation;
      const rows = await this.db<MetricRow>('billable_metrics').select('*');
      const next = new Map<string, MetricRow[]>();
      for (const row of rows) next.set(row.event_type, [...(next.get(row.event_type) ?? []), row]);
      this.byEventType = next;
      // Invalidated while this read was in flight: it may predate the new metric, so it does not count as fresh
      // (marking it fresh served the stale list for maxAgeMs, and events of the new metric went unchecked).
      this.loadedAt = generation === this.generation ? Date.now() : 0;
    })().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }
}
