/**
 * What each wallet draw paid of each invoice line, per grant, and what give-backs returned of each line (migration
 * 0800, docs/wallets.md "Re-rating"): a re-rating gives credit back only to the grants that paid the lowered line.
 */
import type { Knex } from 'knex';
import { toDecimal, ZERO } from '../domain/money';
import type { LineDraw } from '../domain/wallet';

type Db = Knex | Knex.Transaction;

/** `draw`: what the draw paid; otherwise the give-back's reversal key. */
export const DRAW_PART = 'draw';

export interface DrawLineRow {
  readonly part: string;
  readonly grant_id: string | null;
  readonly line_key: string;
  readonly amount: string;
}

/** Records lines of a draw or give-back, in the transaction that writes its ledger entries. */
export async function recordDrawLines(trx: Knex.Transaction, walletId: string, drawKey: string, part: string, lines: readonly LineDraw[]): Promise<void> {
  const rows = lines.filter((line) => toDecimal(line.amount).gt(ZERO)).map((line) => ({ wallet_id: walletId, draw_key: drawKey, part, grant_id: line.grantId, line_key: line.lineKey, amount: line.amount }));
  if (rows.length > 0) await trx('wallet_draw_lines').insert(rows);
}

/** Every line row of a draw (what it paid and what give-backs returned), oldest first. */
export async function drawLineRows(db: Db, walletId: string, drawKey: string): Promise<DrawLineRow[]> {
  const rows: DrawLineRow[] = await db('wallet_draw_lines').where({ wallet_id: walletId, draw_key: drawKey }).orderBy('id').select('part', 'grant_id', 'line_key', 'amount');
  return rows.map((row) => ({ ...row, amount: String(row.amount) }));
}

export function asLineDraws(rows: readonly DrawLineRow[]): LineDraw[] {
  return rows.map((row) => ({ grantId: row.grant_id, lineKey: row.line_key, amount: row.amount }));
}
