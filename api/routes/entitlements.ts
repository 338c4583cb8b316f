/**
 * "May this customer do X right now?" (issue 12, docs/wallets.md):
 *
 *   GET /v1/customers/:id/entitlements            every feature the customer's current plans declare
 *   GET /v1/customers/:id/entitlements/:feature   one feature: {feature, kind, has_access, usage, limit, balance, resets_at}
 *
 * Answered from the running totals (store/rollups.ts) and the wallet balance, so the cost does not grow with the
 * number of events. Readable with the `app` role and with the customer's own usage token.
 */
import type { Router } from 'express';
import { absentEntitlement } from '../../domain/entitlements';
import { findCustomer } from '../../store/customers';
import type { Database } from '../../store/database';
import { customerEntitlements } from '../../store/entitlements';
import { availableBalanceFor } from '../../store/wallets';
import { ApiProblem } from '../problem';
import { CustomerScope, declareRoutes } from '../route-declarations';
import { uuidParam } from '../schemas';

/** Customer scope of `/:id` customer routes: `:id` is the token's own customer. */
export const ownCustomer: CustomerScope = async (params, customerId) => params.id === customerId;

const FEATURE_CODE = /^[A-Za-z0-9_.:-]{1,100}$/;

export function entitlementsRouter(db: Database, options: { readonly now?: () => Date } = {}): Router {
  const routes = declareRoutes();
  // The app's clock (the one ingestion judges timestamps by): which period the answer counts in follows it.
  const now = options.now ?? (() => new Date());
  const access = { allow: ['app', 'finance', 'customer_usage'] as const, customerScope: ownCustomer };

  function customerIdOf(id: string): string {
    const parsed = uuidParam.safeParse(id);
    if (!parsed.success) throw new ApiProblem('customer_not_found', `no customer ${id}`);
    return parsed.data;
  }
  // Only an empty answer needs to know whether the customer exists (a hot check stays at two reads).
  async function ensureCustomer(id: string): Promise<void> {
    if (!(await findCustomer(db, id))) throw new ApiProblem('customer_not_found', `no customer ${id}`);
  }
  const balanceOf = (customerId: string, currency: string, metricCodes: readonly string[]) => availableBalanceFor(db, customerId, currency, metricCodes);

  routes.get('/:id/entitlements', { ...access, allow: [...access.allow] }, async (req, res) => {
    const customerId = customerIdOf(req.params.id);
    const data = await customerEntitlements(db, customerId, balanceOf, undefined, now());
    if (data.length === 0) await ensureCustomer(customerId);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ customer_id: customerId, data });
  });

  routes.get('/:id/entitlements/:feature', { ...access, allow: [...access.allow] }, async (req, res) => {
    if (!FEATURE_CODE.test(req.params.feature)) throw new ApiProblem('validation_failed', 'a feature code: letters, digits, "_", ".", ":" or "-", at most 100');
    const customerId = customerIdOf(req.params.id);
    const [answer] = await customerEntitlements(db, customerId, balanceOf, req.params.feature, now());
    if (!answer) await ensureCustomer(customerId);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ customer_id: customerId, ...(answer ?? absentEntitlement(req.params.feature)) });
  });

  return routes.router;
}
