/**
 * `npm run import -- subscriptions.csv [report.csv]`: imports subscriptions running elsewhere, each in its current
 * period (api/subscription-import-csv.ts has the columns). Needs DATABASE_URL; Temporal as the API reaches it (a
 * TOML profile or the TEMPORAL_* variables, config/temporal-connection.ts). Progress goes to stderr; the per-row report (created, existing or
 * rejected with a problem code, and the stored usage events each start leaves unbilled) to report.csv, or to stdout.
 * Rerunning the same file creates nothing twice and reports the same.
 */
import { Client, Connection } from '@temporalio/client';
import { readFileSync, writeFileSync } from 'node:fs';
import { importReportCsv, importSubscriptionsCsv } from '../api/subscription-import-csv';
import { connectOrExplain } from '../config/temporal-connect-diagnosis';
import { temporalConnectionFromEnv } from '../config/temporal-connection';
import { createDatabase, migrateToLatest } from '../store/database';

async function main(): Promise<void> {
  const [file, reportFile] = process.argv.slice(2);
  if (!file) throw new Error('usage: npm run import -- subscriptions.csv [report.csv]');
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required');
  const db = createDatabase(databaseUrl);
  const temporalSettings = temporalConnectionFromEnv();
  const connection = await connectOrExplain(temporalSettings, (options) => Connection.connect(options));
  try {
    await migrateToLatest(db);
    const temporal = new Client({ connection, namespace: temporalSettings.namespace });
    const reports = await importSubscriptionsCsv({ db, temporal }, readFileSync(file, 'utf8'), (progress) => {
      process.stderr.write(
        `${progress.done}/${progress.total} rows: ${progress.created} created, ${progress.existing} existing, ${progress.rejected} rejected ` +
          `(${(progress.done / Math.max(progress.seconds, 0.001)).toFixed(0)} rows/s)\n`,
      );
    });
    // Usage metered here before the import and billed by nothing: said once on stderr, row by row in the report.
    const uncovered = reports.filter((row) => row.uncovered_usage !== undefined);
    if (uncovered.length > 0) {
      const events = uncovered.reduce((sum, row) => sum + (row.uncovered_usage?.events ?? 0), 0);
      process.stderr.write(`${uncovered.length} rows leave ${events} stored usage events before their current period unbilled (uncovered_events in the report; GET /v1/customers/:id/uncovered-usage lists them)\n`);
    }
    const report = importReportCsv(reports);
    if (reportFile) writeFileSync(reportFile, report);
    else process.stdout.write(report);
    if (reports.some((row) => row.status === 'rejected')) process.exitCode = 2;
  } finally {
    await connection.close();
    await db.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
