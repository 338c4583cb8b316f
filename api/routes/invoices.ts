import type { Router } from 'express';
import type { Database } from '../../store/database';
import { findInvoice, listInvoiceLines, listInvoices } from '../../store/invoices';
import { ApiProblem } from '../problem';
import { listInvoicesQuery, uuidParam } from '../schemas';
import { invoiceJson } from '../serializers';
import { declareRoutes } from '../route-declarations';

export function invoicesRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.get('/', { allow: ['app', 'finance'] }, async (req, res) => {
    const query = listInvoicesQuery.parse(req.query);
    const rows = await listInvoices(db, { customerId: query.customer_id, subscriptionId: query.subscription_id, status: query.status }, query.limit);
    res.json({ data: rows.map((row) => invoiceJson(row)) });
  });

  routes.get('/:id', { allow: ['app', 'finance'] }, async (req, res) => {
    const id = uuidParam.safeParse(req.params.id);
    const invoice = id.success ? await findInvoice(db, id.data) : undefined;
    if (!invoice) throw new ApiProblem('invoice_not_found', `no invoice ${req.params.id}`);
    res.json(invoiceJson(invoice, await listInvoiceLines(db, invoice.id)));
  });

  return routes.router;
}
