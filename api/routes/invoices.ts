import { Router } from 'express';
import type { Database } from '../../store/database';
import { findInvoice, InvoiceRow, listInvoiceLines } from '../../store/invoices';
import { ApiProblem } from '../problem';
import { listInvoicesQuery, uuidParam } from '../schemas';
import { invoiceJson } from '../serializers';

export function invoicesRouter(db: Database): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const query = listInvoicesQuery.parse(req.query);
    const filters: Partial<InvoiceRow> = {};
    if (query.customer_id) filters.customer_id = query.customer_id;
    if (query.subscription_id) filters.subscription_id = query.subscription_id;
    if (query.status) filters.status = query.status;
    const rows = await db<InvoiceRow>('invoices')
      .where(filters)
      .orderBy([{ column: 'period_start' }, { column: 'created_at' }])
      .limit(query.limit);
    res.json({ data: rows.map((row) => invoiceJson(row)) });
  });

  router.get('/:id', async (req, res) => {
    const id = uuidParam.safeParse(req.params.id);
    const invoice = id.success ? await findInvoice(db, id.data) : undefined;
    if (!invoice) throw new ApiProblem('invoice_not_found', `no invoice ${req.params.id}`);
    res.json(invoiceJson(invoice, await listInvoiceLines(db, invoice.id)));
  });

  return router;
}
