/** Grouped counts of the business state (what /metrics shows ops), and the readiness ping. */
import type { Knex } from 'knex';
import { countFindingsByState } from './janitor';

export interface StateCount {
  readonly labels: Readonly<Record<string, string>>;
  readonly count: number;
}

/** Each table once, grouped by the columns ops slice it by. */
const STATE_COUNTS = {
  invoices: ['kind', 'status'],
  payments: ['status'],
  subscriptions: ['status'],
  refunds: ['status'],
} as const;

/** Counted by a query of their own (labels derived from columns). */
type DerivedStateTable = 'reconciliation_findings';
export type BusinessStateTable = keyof typeof STATE_COUNTS | DerivedStateTable;
export type BusinessState = Record<BusinessStateTable, StateCount[]>;

export async function countBusinessState(db: Knex): Promise<BusinessState> {
  const [entries, findings] = await Promise.all([
    Promise.all(
      Object.entries(STATE_COUNTS).map(async ([table, columns]) => {
        const rows = (await db(table).select(...columns).count<Record<string, string>[]>('* as count').groupBy(...columns)) as Record<string, string>[];
        const counts: StateCount[] = rows.map((row) => ({
          labels: Object.fromEntries(columns.map((column) => [column, String(row[column] ?? '')])),
          count: Number(row.count),
        }));
        return [table, counts] as const;
      }),
    ),
    countFindingsByState(db),
  ]);
  return { ...(Object.fromEntries(entries) as Record<keyof typeof STATE_COUNTS, StateCount[]>), reconciliation_findings: findings };
}

/** The cheapest round trip that proves Postgres answers. */
export async function pingDatabase(db: Knex): Promise<void> {
  await db.raw('SELECT 1');
}
