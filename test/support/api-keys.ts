import { createApiKey, KeyRole } from '../../store/api-keys';
import type { Database } from '../../store/database';

export interface TestApiKey {
  readonly id: string;
  readonly key: string;
  /** `{ authorization: 'Bearer <key>' }`, for serve(app, { headers }) or a single call. */
  readonly headers: { authorization: string };
}

/**
 * An API key written straight into the test database (as `npm run create-admin-key` does), for tests that are not
 * about authentication: `serve(createApp(...), { headers: (await createTestApiKey(db, 'admin')).headers })`.
 */
export async function createTestApiKey(
  db: Database,
  role: KeyRole,
  options: { customerId?: string; expiresAt?: Date; name?: string } = {},
): Promise<TestApiKey> {
  const { key, row } = await createApiKey(db, {
    name: options.name ?? `test ${role} key`,
    role,
    customerId: options.customerId ?? null,
    expiresAt: options.expiresAt ?? null,
  });
  return { id: row.id, key, headers: { authorization: `Bearer ${key}` } };
}
