import type { Knex } from 'knex';

/**
 * A cost table is in one currency (docs/pricing.md "Cost tables"). Without one, `unit_cost` was read in the plan's
 * currency, so a metric shared by a USD and a EUR plan billed the EUR plan's cost_plus charge the USD figures as
 * euros. Tables are now dated per (metric, currency): each currency is its own timeline.
 *
 * The stored tables get the one currency every plan charging their metric bills in: those are the plans whose
 * usage the table costed (cost_plus prices and the margins report alike), so that is the currency its figures were
 * read in. When those plans disagree, or no plan charges the metric, the data cannot tell which currency the
 * provider's figures are in, and guessing would put wrong money on invoices: the migration then refuses, naming the
 * metrics, until the operator says it in COST_TABLE_CURRENCIES ("llm_tokens=USD,api_calls=EUR"). A currency given
 * there wins over the plans' one.
 */
export async function up(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE metric_cost_tables ADD COLUMN currency varchar(3)');
  const given = operatorCurrencies(process.env.COST_TABLE_CURRENCIES ?? '');
  const metrics = await db.raw<{ rows: { metric_code: string; currencies: string[] }[] }>(
    `SELECT t.metric_code,
            coalesce(array_agg(DISTINCT p.currency ORDER BY p.currency) FILTER (WHERE p.currency IS NOT NULL), '{}') AS currencies
     FROM (SELECT DISTINCT metric_code FROM metric_cost_tables) t
     LEFT JOIN plans p ON EXISTS (SELECT 1 FROM jsonb_array_elements(p.charges) c WHERE c.value ->> 'metricCode' = t.metric_code)
     GROUP BY t.metric_code
     ORDER BY t.metric_code`,
  );
  const unresolved: string[] = [];
  for (const { metric_code: metricCode, currencies } of metrics.rows) {
    const currency = given.get(metricCode) ?? (currencies.length === 1 ? currencies[0] : undefined);
    if (!currency) {
      unresolved.push(`${metricCode} (${currencies.length ? `charged by plans in ${currencies.join(', ')}` : 'charged by no plan'})`);
      continue;
    }
    await db('metric_cost_tables').where({ metric_code: metricCode }).update({ currency });
  }
  if (unresolved.length) {
    throw new Error(
      `metric_cost_tables: the currency of the cost tables of ${unresolved.join('; ')} cannot be told from the plans. ` +
        'Say which currency their unit costs are in with COST_TABLE_CURRENCIES="<metric>=<ISO 4217 code>,..." and migrate again.',
    );
  }
  await db.raw('ALTER TABLE metric_cost_tables ALTER COLUMN currency SET NOT NULL');
  await db.raw('ALTER TABLE metric_cost_tables DROP CONSTRAINT metric_cost_tables_metric_code_effective_from_unique');
  await db.raw('ALTER TABLE metric_cost_tables ADD CONSTRAINT metric_cost_tables_metric_code_currency_effective_from_unique UNIQUE (metric_code, currency, effective_from)');
}

/** "llm_tokens=USD,api_calls=EUR" -> metric code -> currency; a malformed entry is refused, not skipped. */
function operatorCurrencies(text: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const entry of text.split(',').map((part) => part.trim()).filter(Boolean)) {
    const match = /^([^=\s]+)=([A-Z]{3})$/.exec(entry);
    if (!match) throw new Error(`COST_TABLE_CURRENCIES: "${entry}" is not <metric>=<ISO 4217 code>`);
    result.set(match[1], match[2]);
  }
  return result;
}

export async function down(db: Knex): Promise<void> {
  await db.raw('ALTER TABLE metric_cost_tables DROP CONSTRAINT metric_cost_tables_metric_code_currency_effective_from_unique');
  await db.raw('ALTER TABLE metric_cost_tables ADD CONSTRAINT metric_cost_tables_metric_code_effective_from_unique UNIQUE (metric_code, effective_from)');
  await db.raw('ALTER TABLE metric_cost_tables DROP COLUMN currency');
}
