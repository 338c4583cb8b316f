import type { Router } from 'express';
import { ApiKeyRow, createApiKey, createAuditedApiKey, deleteUsageTokensExpiredBefore, listApiKeys, revokeAuditedApiKey } from '../../store/api-keys';
import type { Database } from '../../store/database';
import { findCustomer } from '../../store/customers';
import { accessOf } from '../access';
import { answerHoldsSecrets } from '../idempotency';
import type { ApiKeyAuthenticator } from '../authentication';
import { ApiProblem } from '../problem';
import { createApiKeyBody, createUsageTokenBody, listApiKeysQuery, revokeApiKeyBody, uuidParam } from '../schemas';
import { ADMIN_ONLY, declareRoutes } from '../route-declarations';

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

/** Never the secret or its hash: the prefix is enough to tell keys apart. */
export function apiKeyJson(row: ApiKeyRow, now = new Date()) {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    prefix: `ml_${row.prefix}_`,
    status: row.revoked_at ? 'revoked' : row.expires_at && row.expires_at <= now ? 'expired' : 'active',
    customer_id: row.customer_id,
    created_by: row.created_by,
    expires_at: iso(row.expires_at),
    revoked_at: iso(row.revoked_at),
    last_used_at: iso(row.last_used_at),
    created_at: iso(row.created_at),
  };
}

function actorOf(res: import('express').Response): string {
  return `api_key:${accessOf(res)?.principal?.keyId ?? 'unknown'}`;
}

/**
 *   POST /v1/api-keys {name, role, expires_at?}  a new key; the response is the only place its secret appears.
 *   GET  /v1/api-keys?role=                     keys without secrets (usage tokens only when asked for by role).
 *   POST /v1/api-keys/:id/revoke {reason?}       revoked at once in this process, within the cache TTL elsewhere.
 */
export function apiKeysRouter(db: Database, authenticator: ApiKeyAuthenticator): Router {
  const routes = declareRoutes();

  routes.post('/', ADMIN_ONLY, async (req, res) => {
    const body = createApiKeyBody.parse(req.body);
    const created = await createAuditedApiKey(
      db,
      {
        name: body.name,
        role: body.role,
        createdBy: accessOf(res)?.principal?.keyId ?? null,
        expiresAt: body.expires_at ? new Date(body.expires_at) : null,
      },
      { actor: actorOf(res), details: { name: body.name, role: body.role, expiresAt: body.expires_at ?? null } },
    );
    answerHoldsSecrets(res, ['key']);
    res.status(201).json({ ...apiKeyJson(created.row), key: created.key });
  });

  routes.get('/', ADMIN_ONLY, async (req, res) => {
    const query = listApiKeysQuery.parse(req.query);
    const rows = (await listApiKeys(db)).filter((row) => (query.role ? row.role === query.role : row.role !== 'customer_usage'));
    res.json({ data: rows.slice(0, query.limit).map((row) => apiKeyJson(row)) });
  });

  routes.post('/:id/revoke', ADMIN_ONLY, async (req, res) => {
    const body = revokeApiKeyBody.parse(req.body ?? {});
    const id = uuidParam.safeParse(req.params.id);
    const row = id.success ? await revokeAuditedApiKey(db, id.data, new Date(), { actor: actorOf(res), reason: body.reason ?? null }) : undefined;
    if (!row) throw new ApiProblem('api_key_not_found', `no API key ${req.params.id}`);
    authenticator.invalidate(row.prefix);
    res.json(apiKeyJson(row));
  });

  return routes.router;
}

/**
 *   POST /v1/customers/:id/usage-tokens {expires_in?}  a short-lived token for the customer's own usage page: it
 *   reads GET /v1/subscriptions/:id/usage of that customer's subscriptions and nothing else.
 */
export function usageTokensRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.post('/:id/usage-tokens', { allow: ['app'] }, async (req, res) => {
    const body = createUsageTokenBody.parse(req.body ?? {});
    const id = uuidParam.safeParse(req.params.id);
    const customer = id.success ? await findCustomer(db, id.data) : undefined;
    if (!customer) throw new ApiProblem('customer_not_found', `no customer ${req.params.id}`);
    // Tokens are minted per page view; long-expired ones are swept here rather than piling up.
    await deleteUsageTokensExpiredBefore(db, new Date(Date.now() - 86_400_000));
    const { key, row } = await createApiKey(db, {
      name: `usage token for ${customer.external_id}`.slice(0, 200),
      role: 'customer_usage',
      customerId: customer.id,
      createdBy: accessOf(res)?.principal?.keyId ?? null,
      expiresAt: new Date(Date.now() + body.expires_in * 1000),
    });
    answerHoldsSecrets(res, ['token']);
    res.status(201).json({
      id: row.id,
      token: key,
      customer_id: customer.id,
      expires_at: iso(row.expires_at),
      scope: 'GET /v1/subscriptions/:id/usage',
    });
  });

  return routes.router;
}
