/**
 * In-process caches for the real-time reads (usage preview, entitlement check): rows they read on every request
 * that do not change under them. A plan row is one immutable version (a change makes a new version with a new id);
 * a metric code never changes meaning once created, and the rare edit of a metric's other columns shows within a
 * few seconds. Kept per database handle, so two databases in one process (tests) never share entries.
 */
import type { Knex } from 'knex';
import { findMetricsByCode, findPlan, MetricRow, PlanRow } from './catalog';

/** Entries a cache keeps before it starts over (a bound, not a tuning knob: real catalogs are far smaller). */
const MAX_ENTRIES = 10_000;
const METRIC_TTL_MS = 5_000;

interface Caches {
  readonly plans: Map<string, PlanRow>;
  readonly metrics: Map<string, { row: MetricRow; loadedAt: number }>;
}

const byDatabase = new WeakMap<Knex, Caches>();

function cachesOf(db: Knex): Caches {
  let caches = byDatabase.get(db);
  if (!caches) byDatabase.set(db, (caches = { plans: new Map(), metrics: new Map() }));
  return caches;
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= MAX_ENTRIES) map.clear();
  map.set(key, value);
}

/** A plan version by id (read once per process). */
export async function cachedPlan(db: Knex, planId: string): Promise<PlanRow> {
  const { plans } = cachesOf(db);
  const cached = plans.get(planId);
  if (cached) return cached;
  const plan = await findPlan(db, planId);
  remember(plans, planId, plan);
  return plan;
}

/** Metrics by code, as findMetricsByCode (absent codes left out, in creation order), from a cache of a few seconds. */
export async function cachedMetricsByCode(db: Knex, codes: readonly string[]): Promise<MetricRow[]> {
  const { metrics } = cachesOf(db);
  const now = Date.now();
  const fresh = (code: string) => {
    const entry = metrics.get(code);
    return entry && now - entry.loadedAt < METRIC_TTL_MS ? entry.row : undefined;
  };
  const unique = [...new Set(codes)];
  const missing = unique.filter((code) => !fresh(code));
  if (missing.length > 0) for (const row of await findMetricsByCode(db, missing)) remember(metrics, row.code, { row, loadedAt: now });
  return unique.flatMap((code) => fresh(code) ?? []).sort((a, b) => a.created_at.getTime() - b.created_at.getTime() || a.code.localeCompare(b.code));
}
