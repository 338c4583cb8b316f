/**
 * A combination is named by its group_by values as text. The close reads them in Postgres (`properties ->> name`),
 * ingestion, reversal credits and cost tables in JavaScript (`combinationOf`): the two must agree for every value
 * an event may carry, or a combination priced (or allowed, under `unmatched: "reject"`) at ingestion is another,
 * unpriced combination on the invoice, and a reversal's credit finds no line to credit. Before, numbers JavaScript
 * writes with an exponent (1e21, 1.5e-7) and objects or arrays (spacing, key order) read differently.
 */
import { combinationOf } from '../../domain/dimensions';
import type { Database } from '../../store/database';
import { createTestDatabase } from '../support/database';

let db: Database;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

const values: unknown[] = [
  'plain text',
  'with "quotes", \\ and\nnewline',
  true,
  false,
  0,
  -0,
  42,
  -7,
  0.1,
  2.5,
  123456789.125,
  1e21,
  -1.5e22,
  1.5e-7,
  5e-324,
  Number.MAX_SAFE_INTEGER,
  { b: 1, a: [1, 2.5, 'x'], longer: { z: null, y: true } },
  [3, 'three', { k: 1e21 }],
  {},
  [],
];

test.each(values.map((value) => [JSON.stringify(value), value]))('the value %s reads the same in JavaScript and in Postgres', async (_label, value) => {
  // Stored as ingestion stores properties: the parsed body written back as JSON.
  const properties = JSON.parse(JSON.stringify({ dim: value }));
  const { rows } = await db.raw<{ rows: { text: string }[] }>(`SELECT ?::jsonb ->> 'dim' AS text`, [JSON.stringify(properties)]);
  expect(combinationOf(properties, ['dim'])).toEqual({ dim: rows[0].text });
});
