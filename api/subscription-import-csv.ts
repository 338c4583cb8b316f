/**
 * A CSV file of subscriptions to import (`npm run import -- file.csv`), cut into batches that go through the same
 * `importSubscriptions` as `POST /v1/subscriptions/import`. Columns by header: external_id, customer_id or
 * customer_external_id, plan_code, plan_version (optional), billing_anchor, current_period_start.
 */
import { parse } from 'csv-parse/sync';
import { IMPORT_BATCH_LIMIT, ImportDeps, ImportRowReport, importSubscriptions } from './subscription-import';

export interface ImportProgress {
  readonly done: number;
  readonly total: number;
  readonly created: number;
  readonly existing: number;
  readonly rejected: number;
  readonly seconds: number;
}

/** CSV rows as import rows: empty cells are absent fields, plan_version a number (zod judges the rest). */
export function parseImportCsv(text: string): Record<string, unknown>[] {
  const records: Record<string, string>[] = parse(text, { columns: true, skip_empty_lines: true, trim: true, bom: true });
  return records.map((record) => {
    const row: Record<string, unknown> = {};
    for (const [column, cell] of Object.entries(record)) {
      if (cell === '') continue;
      row[column] = column === 'plan_version' && /^\d+$/.test(cell) ? Number(cell) : cell;
    }
    return row;
  });
}

/** Imports every row of the CSV, batch after batch, reporting progress after each; the report has one line per row. */
export async function importSubscriptionsCsv(deps: ImportDeps, text: string, onProgress?: (progress: ImportProgress) => void): Promise<ImportRowReport[]> {
  const rows = parseImportCsv(text);
  const startedAt = Date.now();
  const reports: ImportRowReport[] = [];
  // One external id twice in the file is a duplicate whichever batches its copies fall in.
  const seen = new Set<string>();
  for (let offset = 0; offset < rows.length; offset += IMPORT_BATCH_LIMIT) {
    reports.push(...(await importSubscriptions(deps, rows.slice(offset, offset + IMPORT_BATCH_LIMIT), offset, seen)));
    const count = (status: string): number => reports.filter((report) => report.status === status).length;
    onProgress?.({ done: reports.length, total: rows.length, created: count('created'), existing: count('existing'), rejected: count('rejected'), seconds: (Date.now() - startedAt) / 1000 });
  }
  return reports;
}

/**
 * The report as CSV: row (1-based line of data), external id, subscription id, status, problem code, detail, and the
 * stored events the subscription's start leaves unbilled (count and earliest instant; empty when none).
 */
export function importReportCsv(reports: readonly ImportRowReport[]): string {
  const cell = (value: string | number | null | undefined): string => {
    const text = value === null || value === undefined ? '' : String(value);
    return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = reports.map((report) =>
    [report.row + 1, report.external_id, report.subscription_id, report.status, report.code, report.detail, report.uncovered_usage?.events, report.uncovered_usage?.earliest].map(cell).join(','),
  );
  return `row,external_id,subscription_id,status,code,detail,uncovered_events,uncovered_earliest\n${lines.join('\n')}\n`;
}
