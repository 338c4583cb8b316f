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
    const row = await createCustomer(db, { ...body, email: body.email ?? null, payment_method: body.payment_method ?? null });
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
