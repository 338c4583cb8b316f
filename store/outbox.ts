import type { Knex } from 'knex';

export interface OutboxEvent {
  readonly eventType: string;
  readonly aggregateType: string;
  readonly aggregateId: string;
  /** Same key, same event: a retried activity does not emit twice. */
  readonly dedupeKey: string;
  readonly payload: Record<string, unknown>;
}

/** Writes an event in the caller's transaction, so it exists if and only if the change it describes does. */
export async function enqueueOutboxEvent(trx: Knex.Transaction, event: OutboxEvent): Promise<void> {
  await trx('outbox')
    .insert({
      event_type: event.eventType,
      aggregate_type: event.aggregateType,
      aggregate_id: event.aggregateId,
      dedupe_key: event.dedupeKey,
      payload: JSON.stringify(event.payload),
    })
    .onConflict('dedupe_key')
    .ignore();
}

/** Several events in one statement (the invoice numbering step issues a batch at once); same rules as above. */
export async function enqueueOutboxEvents(trx: Knex.Transaction, events: readonly OutboxEvent[]): Promise<void> {
  if (events.length === 0) return;
  await trx('outbox')
    .insert(
      events.map((event) => ({
        event_type: event.eventType,
        aggregate_type: event.aggregateType,
        aggregate_id: event.aggregateId,
        dedupe_key: event.dedupeKey,
        payload: JSON.stringify(event.payload),
      })),
    )
    .onConflict('dedupe_key')
    .ignore();
}

export interface AuditEntry {
  readonly actor: string;
  readonly action: string;
  readonly subjectType: string;
  readonly subjectId: string;
  readonly reason?: string | null;
  readonly details?: Record<string, unknown>;
}

export async function writeAudit(db: Knex | Knex.Transaction, entry: AuditEntry): Promise<void> {
  await db('audit_log').insert({
    actor: entry.actor,
    action: entry.action,
    subject_type: entry.subjectType,
    subject_id: entry.subjectId,
    reason: entry.reason ?? null,
    details: JSON.stringify(entry.details ?? {}),
  });
}
