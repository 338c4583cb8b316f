import type { Knex } from 'knex';
import * as m0001 from './0001_create_customers';
import * as m0002 from './0002_create_billable_metrics';
import * as m0003 from './0003_create_plans';
import * as m0004 from './0004_create_subscriptions';
import * as m0005 from './0005_create_usage_events';
import * as m0006 from './0006_create_invoice_number_sequences';
import * as m0007 from './0007_create_invoices';
import * as m0008 from './0008_create_invoice_lines';
import * as m0009 from './0009_create_payments';
import * as m0010 from './0010_create_sandbox_gateway_charges';
import * as m0011 from './0011_create_outbox';
import * as m0012 from './0012_create_audit_log';

interface Migration {
  up(db: Knex): Promise<void>;
  down(db: Knex): Promise<void>;
}

/**
 * Forward-only migrations, one change each, in order. Listed explicitly (not discovered on disk) so the
 * same list runs under tsx, jest and compiled JavaScript alike. Append new ones at the end; never edit old ones.
 */
const MIGRATIONS: ReadonlyArray<readonly [string, Migration]> = [
  ['0001_create_customers', m0001],
  ['0002_create_billable_metrics', m0002],
  ['0003_create_plans', m0003],
  ['0004_create_subscriptions', m0004],
  ['0005_create_usage_events', m0005],
  ['0006_create_invoice_number_sequences', m0006],
  ['0007_create_invoices', m0007],
  ['0008_create_invoice_lines', m0008],
  ['0009_create_payments', m0009],
  ['0010_create_sandbox_gateway_charges', m0010],
  ['0011_create_outbox', m0011],
  ['0012_create_audit_log', m0012],
];

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => MIGRATIONS.map(([, migration]) => migration),
  getMigrationName: (migration) => MIGRATIONS.find(([, m]) => m === migration)![0],
  getMigration: async (migration) => migration,
};
