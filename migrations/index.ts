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
import * as m0013 from './0013_create_usage_period_closures';
import * as m0014 from './0014_add_usage_events_period_close';
import * as m0015 from './0015_add_subscriptions_usage_blocked';
import * as m0016 from './0016_create_customer_offers';
import * as m0017 from './0017_scope_invoice_period_uniqueness';
import * as m0018 from './0018_add_usage_period_closures_plan';
import * as m0019 from './0019_create_rerates';
import * as m0020 from './0020_create_spending_alerts';
import * as m0021 from './0021_drop_redundant_usage_events_index';
import * as m0100 from './0100_add_sandbox_gateway_charge_reference';
import * as m0101 from './0101_create_sandbox_gateway_refunds';
import * as m0102 from './0102_add_payment_decline_retryable';
import * as m0103 from './0103_one_pending_payment_per_invoice';
import * as m0104 from './0104_add_credit_note_columns_to_invoices';
import * as m0105 from './0105_create_refunds';
import * as m0106 from './0106_create_webhook_endpoints';
import * as m0107 from './0107_create_webhook_deliveries';
import * as m0108 from './0108_create_webhook_delivery_attempts';
import * as m0109 from './0109_create_email_deliveries';
import * as m0200 from './0200_create_api_keys';
import * as m0201 from './0201_create_idempotency_keys';
import * as m0310 from './0310_add_billable_metrics_allow_negative';
import * as m0320 from './0320_create_reconciliation_findings';
import * as m0330 from './0330_create_plan_changes';
import * as m0410 from './0410_add_invoice_finalization_sequence';
import * as m0411 from './0411_create_number_finalized_invoices_function';
import * as m0420 from './0420_add_subscriptions_external_id';
import * as m0450 from './0450_create_usage_rollups';
import * as m0451 from './0451_create_wallets';
import * as m0480 from './0480_add_billable_metrics_group_by';
import * as m0481 from './0481_add_usage_events_reversals';
import * as m0500 from './0500_create_wallet_top_ups';
import * as m0510 from './0510_index_wallet_ledger_entry_key_prefixes';
import * as m0520 from './0520_reseed_usage_rollups';
import * as m0530 from './0530_add_invoice_usage_thresholds';
import * as m0540 from './0540_create_metric_cost_tables';
import * as m0600 from './0600_create_issue_finalized_invoices_function';
import * as m0610 from './0610_add_idempotency_keys_released_at';
import * as m0620 from './0620_add_subscriptions_usage_ends_at';
import * as m0630 from './0630_add_plan_changes_period';
import * as m0640 from './0640_refunds_one_per_credit_and_refunded_invoice';
import * as m0650 from './0650_key_usage_rollups_by_digest';
import * as m0660 from './0660_add_subscriptions_service_gaps';
import * as m0661 from './0661_backfill_subscriptions_service_gaps';
import * as m0700 from './0700_add_metric_cost_tables_currency';
import * as m0710 from './0710_add_subscriptions_usage_blocked_since';
import * as m0720 from './0720_add_subscriptions_scheduled_change';
import * as m0730 from './0730_add_subscriptions_usage_capped_stretches';
import * as m0800 from './0800_create_wallet_draw_lines';
import * as m0830 from './0830_add_rerates_failure';
import * as m0840 from './0840_add_invoices_amount_taken_off';

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
  ['0013_create_usage_period_closures', m0013],
  ['0014_add_usage_events_period_close', m0014],
  ['0015_add_subscriptions_usage_blocked', m0015],
  ['0016_create_customer_offers', m0016],
  ['0017_scope_invoice_period_uniqueness', m0017],
  ['0018_add_usage_period_closures_plan', m0018],
  ['0019_create_rerates', m0019],
  ['0020_create_spending_alerts', m0020],
  ['0021_drop_redundant_usage_events_index', m0021],
  ['0100_add_sandbox_gateway_charge_reference', m0100],
  ['0101_create_sandbox_gateway_refunds', m0101],
  ['0102_add_payment_decline_retryable', m0102],
  ['0103_one_pending_payment_per_invoice', m0103],
  ['0104_add_credit_note_columns_to_invoices', m0104],
  ['0105_create_refunds', m0105],
  ['0106_create_webhook_endpoints', m0106],
  ['0107_create_webhook_deliveries', m0107],
  ['0108_create_webhook_delivery_attempts', m0108],
  ['0109_create_email_deliveries', m0109],
  ['0200_create_api_keys', m0200],
  ['0201_create_idempotency_keys', m0201],
  ['0310_add_billable_metrics_allow_negative', m0310],
  ['0320_create_reconciliation_findings', m0320],
  ['0330_create_plan_changes', m0330],
  ['0410_add_invoice_finalization_sequence', m0410],
  ['0411_create_number_finalized_invoices_function', m0411],
  ['0420_add_subscriptions_external_id', m0420],
  ['0450_create_usage_rollups', m0450],
  ['0451_create_wallets', m0451],
  ['0480_add_billable_metrics_group_by', m0480],
  ['0481_add_usage_events_reversals', m0481],
  ['0500_create_wallet_top_ups', m0500],
  ['0510_index_wallet_ledger_entry_key_prefixes', m0510],
  ['0520_reseed_usage_rollups', m0520],
  ['0530_add_invoice_usage_thresholds', m0530],
  ['0540_create_metric_cost_tables', m0540],
  ['0600_create_issue_finalized_invoices_function', m0600],
  ['0610_add_idempotency_keys_released_at', m0610],
  ['0620_add_subscriptions_usage_ends_at', m0620],
  ['0630_add_plan_changes_period', m0630],
  ['0640_refunds_one_per_credit_and_refunded_invoice', m0640],
  ['0650_key_usage_rollups_by_digest', m0650],
  ['0660_add_subscriptions_service_gaps', m0660],
  ['0661_backfill_subscriptions_service_gaps', m0661],
  ['0700_add_metric_cost_tables_currency', m0700],
  ['0710_add_subscriptions_usage_blocked_since', m0710],
  ['0720_add_subscriptions_scheduled_change', m0720],
  ['0730_add_subscriptions_usage_capped_stretches', m0730],
  ['0800_create_wallet_draw_lines', m0800],
  ['0830_add_rerates_failure', m0830],
  ['0840_add_invoices_amount_taken_off', m0840],
];

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => MIGRATIONS.map(([, migration]) => migration),
  getMigrationName: (migration) => MIGRATIONS.find(([, m]) => m === migration)![0],
  getMigration: async (migration) => migration,
};
