import type { Router } from 'express';
import type { Database } from '../../store/database';
import { createCustomer, findCustomer } from '../../store/customers';
import { ApiProblem } from '../problem';
import { createCustomerBody, uuidParam } from '../schemas';
import { customerJson } from '../serializers';
import { ADMIN_ONLY, declareRoutes } from '../route-declarations';

export function customersRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.post('/', ADMIN_ONLY, async (req, res) => {
    const body = createCustomerBody.parse(req.body);
    // The token as POST /:id/payment-method reads it (updatePaymentMethodBody trims): one pasted with spaces around
    // it is no token the gateway knows, so every charge was declined (unknown_payment_method, not retryable) and
    // dunning gave the subscription up. A blank one is refused before anything is written.
    const paymentMethod = body.payment_method === undefined ? null : body.payment_method.trim();
    if (paymentMethod === '') {
      throw new ApiProblem('validation_failed', '1 invalid field(s): payment_method', [{ path: 'payment_method', message: 'must not be blank' }]);
    }
    const row = await createCustomer(db, { ...body, email: body.email ?? null, payment_method: paymentMethod });
    if (!row) throw new ApiProblem('customer_already_exists', `a customer with external_id ${body.external_id} exists`);
    res.status(201).json(customerJson(row));
  });

  routes.get('/:id', { allow: ['app', 'finance'] }, async (req, res) => {
    const id = uuidParam.safeParse(req.params.id);
    const row = id.success ? await findCustomer(db, id.data) : undefined;
    if (!row) throw new ApiProblem('customer_not_found', `no customer ${req.params.id}`);
    res.json(customerJson(row));
  });

  return routes.router;
}
