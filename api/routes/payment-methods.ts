import type { Response, Router } from 'express';
import type { Database } from '../../store/database';
import { CustomerRow, PaymentMethodChange, replacePaymentMethod } from '../../store/customers';
import { retriesUnfinishedRequest } from '../idempotency';
import { ApiProblem } from '../problem';
import { updatePaymentMethodBody, uuidParam } from '../schemas';
import { customerJson } from '../serializers';
import { declareRoutes } from '../route-declarations';

export type { PaymentMethodChange };

export interface PaymentMethodHooks {
  /**
   * Called after a changed payment method is committed. DUNNING: the lead wires this to signal the customer's
   * past-due subscription workflows to retry the open invoice at once. A failure here surfaces as a 5xx; the
   * new token is already stored, and repeating the request with the same Idempotency-Key calls the hook again
   * (no new event: see resumedChange).
   */
  readonly onPaymentMethodUpdated?: (change: PaymentMethodChange) => Promise<void>;
}

/**
 * The change a retry of the same request still owes the hook: its first attempt committed the token (so this one
 * finds it unchanged) and then failed before the hook got through (Temporal down: a 5xx gave its key back). Without
 * the call a suspended subscription, which waits for nothing but a new payment method, would never be charged again.
 * A new request posting the token already on file is no change and retries nothing. The previous token is the
 * first attempt's to know (its audit record); the hook needs only the customer and the token.
 */
function resumedChange(res: Response, row: CustomerRow): PaymentMethodChange | null {
  return retriesUnfinishedRequest(res) && row.payment_method ? { customerId: row.id, paymentMethod: row.payment_method, previousPaymentMethod: null } : null;
}

/** POST /v1/customers/:id/payment-method {payment_method}: replaces the customer's gateway token. */
export function paymentMethodsRouter(db: Database, hooks: PaymentMethodHooks = {}): Router {
  const routes = declareRoutes();

  routes.post('/:id/payment-method', { allow: ['app', 'finance'] }, async (req, res) => {
    const body = updatePaymentMethodBody.parse(req.body);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw new ApiProblem('customer_not_found', `no customer ${req.params.id}`);

    const replaced = await replacePaymentMethod(db, id.data, body.payment_method, 'api');
    if (!replaced) throw new ApiProblem('customer_not_found', `no customer ${req.params.id}`);
    const { row, change } = replaced;

    // ---- DUNNING RETRY SPOT (lead): signal past-due subscription workflows here, via hooks.onPaymentMethodUpdated ----
    const owed = change ?? resumedChange(res, row);
    if (owed && hooks.onPaymentMethodUpdated) await hooks.onPaymentMethodUpdated(owed);

    res.json(customerJson(row));
  });

  return routes.router;
}
