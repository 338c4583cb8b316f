import type { Router } from 'express';
import type { Database } from '../../store/database';
import { decodeInvoiceCursor, encodeInvoiceCursor, findIssuedInvoice, listInvoiceLines, listInvoices, numberInvoicesAwaitingNumber } from '../../store/invoices';
import { ApiProblem } from '../problem';
import { listInvoicesQuery, uuidParam } from '../schemas';
import { invoiceJson } from '../serializers';
import { declareRoutes } from '../route-declarations';

/** The invoice a `starting_after` cursor names; a cursor that is not one of ours is refused before any read. */
export function invoiceCursorId(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = decodeInvoiceCursor(cursor);
  if (!id) throw foreignInvoiceCursor();
  return id;
}

/** A cursor from another list (another filter, customer or subscription) or one that names no row of it (any paged list). */
export function foreignInvoiceCursor(): ApiProblem {
  const message = 'not a next_cursor of this list (same filters): start again without starting_after';
  return new ApiProblem('validation_failed', `invalid starting_after: ${message}`, [{ path: 'starting_after', message }]);
}

export function invoicesRouter(db: Database): Router {
  const routes = declareRoutes();

  routes.get('/', { allow: ['app', 'finance'] }, async (req, res) => {
    const query = listInvoicesQuery.parse(req.query);
    const startingAfter = invoiceCursorId(query.starting_after); // a bad cursor is refused before the numbering below writes
    // A finalized invoice whose finalizer crashed before numbering is numbered first (as a charge or the janitor
    // would): listed as it was, it showed as a draft without a number and was missing from `status=open`.
    await numberInvoicesAwaitingNumber(db);
    const filters = { customerId: query.customer_id, subscriptionId: query.subscription_id, status: query.status };
    const page = await listInvoices(db, filters, query.limit, startingAfter);
    if (page.foreignCursor) throw foreignInvoiceCursor();
    const rows = page.rows;
    res.json({ data: rows.map((row) => invoiceJson(row)), has_more: page.hasMore, next_cursor: rows.length ? encodeInvoiceCursor(rows[rows.length - 1].id) : null });
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
