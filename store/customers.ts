/** Customers: who is billed, in which currency, with which payment method. */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { enqueueOutboxEvent, writeAudit } from './outbox';

export interface CustomerRow {
  id: string;
  external_id: string;
  name: string;
  email: string | null;
  currency: string;
  payment_method: string | null;
  created_at: Date;
}

export interface NewCustomer {
  readonly external_id: string;
  readonly name: string;
  readonly email: string | null;
  readonly currency: string;
  readonly payment_method: string | null;
}

/** Creates a customer; undefined when one with that external id exists (the external id is the caller's key). */
export async function createCustomer(db: Knex | Knex.Transaction, customer: NewCustomer): Promise<CustomerRow | undefined> {
  const [row] = await db<CustomerRow>('customers').insert(customer).onConflict('external_id').ignore().returning('*');
  return row;
}

export async function findCustomer(db: Knex | Knex.Transaction, customerId: string): Promise<CustomerRow | undefined> {
  return db<CustomerRow>('customers').where({ id: customerId }).first();
}

/** Our ids of the customers known by these external ids; unknown external ids are simply absent. */
export async function findCustomerIdsByExternalId(
  db: Knex | Knex.Transaction,
  externalIds: readonly string[],
): Promise<Pick<CustomerRow, 'id' | 'external_id'>[]> {
  return db<CustomerRow>('customers').whereIn('external_id', externalIds).select('id', 'external_id');
}

export interface PaymentMethodChange {
  readonly customerId: string;
  readonly paymentMethod: string;
  readonly previousPaymentMethod: string | null;
}

/**
 * Replaces a customer's payment method, with its audit record and outbox event in the same transaction.
 * Undefined when there is no such customer; `change` is null when the method was already the same (nothing is
 * written, so repeating the request emits no second event).
 */
export async function replacePaymentMethod(
  db: Knex,
  customerId: string,
  paymentMethod: string,
  actor: string,
): Promise<{ row: CustomerRow; change: PaymentMethodChange | null } | undefined> {
  return db.transaction(async (trx) => {
    const current = await trx<CustomerRow>('customers').where({ id: customerId }).forUpdate().first();
    if (!current) return undefined;
    if (current.payment_method === paymentMethod) return { row: current, change: null };
    const [updated] = await trx<CustomerRow>('customers').where({ id: current.id }).update({ payment_method: paymentMethod }).returning('*');
    await writeAudit(trx, {
      actor,
      action: 'customer.payment_method_updated',
      subjectType: 'customer',
      subjectId: current.id,
      details: { paymentMethod, previousPaymentMethod: current.payment_method },
    });
    await enqueueOutboxEvent(trx, {
      eventType: 'customer.payment_method_updated',
      aggregateType: 'customer',
      aggregateId: current.id,
      dedupeKey: `customer.payment_method_updated:${current.id}:${randomUUID()}`,
      payload: { customerId: current.id, paymentMethod },
    });
    return { row: updated, change: { customerId: current.id, paymentMethod, previousPaymentMethod: current.payment_method } };
  });
}
