import type { Router } from 'express';
import type { Database } from '../../store/database';
import { PaymentMethodChange, replacePaymentMethod } from '../../store/customers';
import { ApiProblem } from '../problem';
import { updatePaymentMethodBody, uuidParam } from '../schemas';
import { customerJson } from '../serializers';
import { declareRoutes } from '../route-declarations';

export type { PaymentMethodChange };

export interface PaymentMethodHooks {
  /**
   * Called after a changed payment method is committed. DUNNING: the lead wires this to signal the customer's
   * past-due subscription workflows to retry the open invoice at once. A failure here surfaces as a 5xx; the
   * new token is already stored, and repeating the request is harmless (same token, no new event).
   */
  readonly onPaymentMethodUpdated?: (change: PaymentMethodChange) => Promise<void>;
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
    if (change && hooks.onPaymentMethodUpdated) await hooks.onPaymentMethodUpdated(change);

    res.json(customerJson(row));
  });

  return routes.router;
}
