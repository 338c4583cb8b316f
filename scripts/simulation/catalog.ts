/**
 * Where the simulated plans come from:
 * - a catalog file: `{ "metrics": [...], "plans": [...] }`, each entry the body you would POST to /v1/metrics or
 *   /v1/plans. The simulation POSTs them to its own throwaway API, so they are validated and stored exactly as
 *   production would (a plan code listed twice publishes two versions; the last one is simulated);
 * - an existing database (DATABASE_URL), read-only: the newest version of each named plan and the metrics it
 *   charges for, copied row for row (settings the API body cannot express, such as retention terms, come along).
 */
import { readFile } from 'node:fs/promises';
import type { Charge } from '../../domain/rating';
import { createDatabase } from '../../store/database';
import { findMetricsByCode, findPlanVersion, MetricRow, PlanRow } from '../../store/catalog';

export interface CatalogFile {
  readonly metrics: readonly Record<string, unknown>[];
  readonly plans: readonly Record<string, unknown>[];
}

export interface CatalogRows {
  readonly metrics: readonly Omit<MetricRow, 'id' | 'created_at'>[];
  readonly plans: readonly Omit<PlanRow, 'id' | 'created_at'>[];
}

export type CatalogSource = { readonly kind: 'file'; readonly catalog: CatalogFile } | { readonly kind: 'rows'; readonly rows: CatalogRows };

export class CatalogError extends Error {
  override name = 'CatalogError';
}

export function parseCatalog(text: string, origin = 'catalog'): CatalogFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new CatalogError(`${origin}: not JSON (${(error as Error).message})`);
  }
  const catalog = parsed as Partial<CatalogFile> | null;
  if (!catalog || typeof catalog !== 'object' || !Array.isArray(catalog.plans) || (catalog.metrics !== undefined && !Array.isArray(catalog.metrics))) {
    throw new CatalogError(`${origin}: expected {"metrics": [POST /v1/metrics bodies], "plans": [POST /v1/plans bodies]}`);
  }
  return { metrics: catalog.metrics ?? [], plans: catalog.plans };
}

export async function readCatalogFile(file: string): Promise<CatalogFile> {
  return parseCatalog(await readFile(file, 'utf8'), file);
}

/** The plan codes a catalog offers (in order, once each). */
export function catalogPlanCodes(source: CatalogSource): string[] {
  const codes = source.kind === 'file' ? source.catalog.plans.map((plan) => String(plan.code)) : source.rows.plans.map((plan) => plan.code);
  return [...new Set(codes)];
}

/** Reads the newest version of each plan code, and the metrics they charge for, from an existing database. */
export async function readCatalogFromDatabase(databaseUrl: string, planCodes: readonly string[]): Promise<CatalogRows> {
  const db = createDatabase(databaseUrl, 2);
  try {
    const plans: PlanRow[] = [];
    for (const code of planCodes) {
      const plan = await findPlanVersion(db, code); // the newest version
      if (!plan) throw new CatalogError(`the database has no plan ${code}`);
      plans.push(plan);
    }
    const metricCodes = [...new Set(plans.flatMap((plan) => (plan.charges as Charge[]).map((charge) => charge.metricCode)))];
    const metrics = await findMetricsByCode(db, metricCodes);
    return {
      metrics: metrics.map(({ id: _id, created_at: _created, ...metric }) => metric),
      plans: plans.map(({ id: _id, created_at: _created, ...plan }) => plan),
    };
  } finally {
    await db.destroy();
  }
}
