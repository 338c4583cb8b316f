import type { Router } from 'express';
import type { Database } from '../../store/database';
import { findIssuedInvoice, listInvoiceLines, listInvoices, numberInvoicesAwaitingNumber } from '../../store/invoices';
import { ApiProblem } from '../problem';
import { listInvoicesQuery, uuidParam } from '../schemas';
import { invoiceJson } from '../serializers';
import { declareRoutes } from '../route-declarations';

export function invoicesRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.get('/', { allow: ['app', 'finance'] }, async (req, res) => {
    const query = listInvoicesQuery.parse(req.query);
    // A finalized invoice whose finalizer crashed before numbering is numbered first (as a charge or the janitor
    // would): listed as it was, it showed as a draft without a number and was missing from `status=open`.
    await numberInvoicesAwaitingNumber(db);
    const rows = await listInvoices(db, { customerId: query.customer_id, subscriptionId: query.subscription_id, status: query.status }, query.limit);
    res.json({ data: rows.map((row) => invoiceJson(row)) });
  });

  routes.get('/:id', { allow: ['app', 'finance'] }, async (req, res) => {
    const id = uuidParam.safeParse(req.params.id);
    // As issued (store/invoices.ts findIssuedInvoice): a finalized invoice still waiting for its number (finalizer
    // crashed before numbering) is numbered first, never shown as a draft without its number.
    const invoice = id.success ? await findIssuedInvoice(db, id.data) : undefined;
    if (!invoice) throw new ApiProblem('invoice_not_found', `no invoice ${req.params.id}`);
    res.json(invoiceJson(invoice, await listInvoiceLines(db, invoice.id)));
  });

  return routes.router;
}
