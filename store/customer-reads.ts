/** Reads of customer rows that billing documents and the usage page need. */
import type { Knex } from 'knex';
import type { CustomerRow } from './customers';

export async function findCustomerById(db: Knex | Knex.Transaction, customerId: string): Promise<CustomerRow | undefined> {
  return db<CustomerRow>('customers').where({ id: customerId }).first();
}
