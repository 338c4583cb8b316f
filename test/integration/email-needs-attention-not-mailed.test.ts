/**
 * `subscription.needs_attention` is an operator alert (docs/operations.md: billing stopped on a failed step, with
 * the step, error type and message). The email channel mailed every event about a customer, so the customer got
 * "There is an update on your account: subscription needs attention" with our internal failure message in it, and
 * again on every failed retry. Operator alerts go to webhooks (the operator's systems), never to the customer.
 */
import { mkdtempSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileEmailSink } from '../../notifications/email';
import type { Logger } from '../../notifications/logger';
import { dispatchOutboxOnce } from '../../notifications/outbox-dispatcher';
import type { Database } from '../../store/database';
import { enqueueOutboxEvent } from '../../store/outbox';
import { createTestDatabase } from '../support/database';
import { insertCustomer, insertPlan, insertSubscription } from '../support/fixtures';

let db: Database;
const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.destroy();
});

test('a subscription that needs attention is not mailed to its customer; a customer-facing status change still is', async () => {
  const folder = mkdtempSync(path.join(os.tmpdir(), 'meterloop-mail-'));
  const customer = await insertCustomer(db, { name: 'Grace Hopper', email: 'grace@example.com' });
  const plan = await insertPlan(db, { code: 'attention-mail', billing_interval: 'P1M', flat_fee: '10' });
  const { row } = await insertSubscription(db, customer, plan, new Date('2030-01-01T00:00:00Z'));
  const statusEvent = (status: string, reason: string) =>
    db.transaction((trx) =>
      enqueueOutboxEvent(trx, {
        eventType: `subscription.${status}`,
        aggregateType: 'subscription',
        aggregateId: row.id,
        dedupeKey: `subscription.${status}:${row.id}:2030-02-01`,
        payload: { subscriptionId: row.id, status, at: '2030-02-01T00:00:00.000Z', reason },
      }),
    );
  await statusEvent('needs_attention', 'create_period_invoice failed (event_count_mismatch): rollup 11 != events 12 for customer 4f1c');
  await statusEvent('past_due', 'card declined');

  await dispatchOutboxOnce({ db, email: { sink: new FileEmailSink(folder) }, logger: quiet });
  const mails = await Promise.all((await fs.readdir(folder)).sort().map((file) => fs.readFile(path.join(folder, file), 'utf8')));
  const subjects = mails.map((mail) => /^Subject: (.*)$/m.exec(mail)?.[1]);
  expect(subjects).toEqual(['Your attention-mail subscription is past due']);
  expect(mails.join('\n')).not.toContain('event_count_mismatch');
});
