/**
 * Invoice and credit note documents, rendered on request from the stored (finalized, never edited) rows:
 *
 *   GET /v1/invoices/:id/document.html   a self-contained HTML page
 *   GET /v1/invoices/:id/document.pdf    a PDF 1.4 file
 *
 * Both show every line with its breakdown (tiers, included units, credit allocation, proration) and a total that
 * equals the sum of the lines. `?download=1` asks the browser to save the file instead of showing it.
 */
import type { Router, Response } from 'express';
import { z } from 'zod';
import type { Database } from '../../store/database';
import { findInvoice, findIssuedInvoice, InvoiceRow, listInvoiceLines } from '../../store/invoices';
import { findCustomer } from '../../store/customers';
import { refundOfCredit } from '../../store/credit-notes';
import { buildInvoiceDocument, InvoiceDocument } from '../documents/invoice-document';
import { renderInvoiceHtml } from '../documents/invoice-html';
import { renderInvoicePdf } from '../documents/invoice-pdf';
import { ApiProblem } from '../problem';
import { uuidParam } from '../schemas';
import { declareRoutes } from '../route-declarations';

export const invoiceDocumentQuery = z.strictObject({
  download: z.enum(['0', '1']).optional(),
});

/** Mounted at /v1/invoices, beside the JSON routes. */
export function invoiceDocumentsRouter(db: Database): Router {
  const routes = declareRoutes();

  async function load(id: string): Promise<{ doc: InvoiceDocument; invoice: InvoiceRow }> {
    const parsed = uuidParam.safeParse(id);
    // As issued: a finalized invoice still waiting for its number (its finalizer crashed before numbering) is
    // numbered first, so its document carries its number, never "DRAFT" for an invoice whose lines are final.
    const invoice = (parsed.success ? await findIssuedInvoice(db, parsed.data) : undefined) as
      | (InvoiceRow & { credited_invoice_id?: string | null; reason?: string | null })
      | undefined;
    if (!invoice) throw new ApiProblem('invoice_not_found', `no invoice ${id}`);
    const [lines, customer, credited, refund] = await Promise.all([
      listInvoiceLines(db, invoice.id),
      findCustomer(db, invoice.customer_id),
      invoice.credited_invoice_id ? findInvoice(db, invoice.credited_invoice_id) : Promise.resolve(undefined),
      // A credit note's refund, or a negative invoice's (the refunds name it the same way; one per payment it was
      // refunded from): what the document says became of the money.
      refundOfCredit(db, invoice.id),
    ]);
    const doc = buildInvoiceDocument({
      invoice,
      lines,
      customer: customer ?? { name: '(unknown customer)', external_id: invoice.customer_id, email: null },
      creditedInvoiceNumber: credited?.number ?? null,
      // The refund as the store gives it, with its parts when it lists them: a credit refunded in part and refused in
      // part says each outcome with its own amount (api/documents/invoice-document.ts settlementNote).
      refund: refund ?? null,
    });
    return { doc, invoice };
  }

  function documentHeaders(res: Response, doc: InvoiceDocument, extension: 'html' | 'pdf', download: boolean): void {
    res.setHeader('Content-Disposition', `${download ? 'attachment' : 'inline'}; filename="${doc.fileName}.${extension}"`);
    // An invoice's lines never change, but its status does (open -> paid): revalidate every time.
    res.setHeader('Cache-Control', 'private, no-cache');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    // The HTML runs no scripts and loads nothing: its only styles are inline.
    res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  }

  routes.get('/:id/document.html', { allow: ['app', 'finance'] }, async (req, res) => {
    const query = invoiceDocumentQuery.parse(req.query);
    const { doc } = await load(req.params.id);
    documentHeaders(res, doc, 'html', query.download === '1');
    res.type('text/html; charset=utf-8').send(renderInvoiceHtml(doc));
  });

  routes.get('/:id/document.pdf', { allow: ['app', 'finance'] }, async (req, res) => {
    const query = invoiceDocumentQuery.parse(req.query);
    const { doc, invoice } = await load(req.params.id);
    documentHeaders(res, doc, 'pdf', query.download === '1');
    res.type('application/pdf').send(renderInvoicePdf(doc, { createdAt: invoice.finalized_at ?? undefined }));
  });

  return routes.router;
}
