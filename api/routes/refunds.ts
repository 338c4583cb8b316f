import { randomUUID } from 'node:crypto';
import type { Request, Router } from 'express';
import { formatMoney, toDecimal } from '../../domain/money';
import { executeRefund } from '../../payments/refunds';
import type { PaymentGateway } from '../../payments/gateway';
import { CreditNoteRejectedError, CreditNoteRow, issueCreditNote, listCreditNotes, refundableBalance, RefundRow } from '../../store/credit-notes';
import type { Database } from '../../store/database';
import { findInvoice } from '../../store/invoices';
import { findPurchasedCredit, unspentPurchasedCredit } from '../../store/wallet-topups';
import { answerResumesOnRepeat, keyNamesAnotherRequest, scopedRequestId } from '../idempotency';
import { ApiProblem } from '../problem';
import { idempotencyKeyHeader, refundInvoiceBody, uuidParam } from '../schemas';
import { invoiceJson } from '../serializers';
import { declareRoutes } from '../route-declarations';

function creditNoteJson(creditNote: CreditNoteRow, refund: RefundRow | undefined) {
  return {
    ...invoiceJson(creditNote),
    credited_invoice_id: creditNote.credited_invoice_id,
    reason: creditNote.reason,
    refund: refund
      ? {
          id: refund.id,
          status: refund.status,
          amount: formatMoney(toDecimal(refund.amount), refund.currency),
          currency: refund.currency,
          gateway_refund_id: refund.gateway_refund_id,
          failure_code: refund.failure_code,
          created_at: refund.created_at.toISOString(),
        }
      : null,
  };
}

function toProblem(error: CreditNoteRejectedError): ApiProblem {
  if (error.code === 'invalid_amount') return new ApiProblem('validation_failed', error.detail, [{ path: 'amount', message: error.detail }]);
  return new ApiProblem(error.code, error.detail);
}

const apiKeyIdOf = (req: Request): string | undefined => (req as Request & { apiKey?: { id: string } }).apiKey?.id;

/**
 * The credit note's key (unique per invoice) for a request's Idempotency-Key: scoped per API key, as every identity
 * derived from one (api/idempotency.ts). The header was stored as it came: a second integration refunding the same
 * invoice under the same key value (a deterministic `refund-<order>`) was answered 200 with the first one's credit
 * note and refunded nothing, or refused as a key reuse; and a header equal to an internal key (a re-rating's credit)
 * was answered with that credit note. A credit note issued before keys were scoped keeps its key as sent: a retry of
 * its (pending) refund still finds it instead of refunding a second time; only for a header without a colon (a
 * UUID, the usual key), so that neither a scoped key nor an internal one (`rerate:<id>`) is ever taken for it.
 */
async function creditNoteKey(db: Database, invoiceId: string, apiKeyId: string | undefined, headerKey: string): Promise<string> {
  const scoped = scopedRequestId(apiKeyId, 'refund', headerKey)!;
  if (headerKey.includes(':')) return scoped;
  const notes = await listCreditNotes(db, invoiceId);
  return notes.some(({ creditNote }) => creditNote.idempotency_key === headerKey) ? headerKey : scoped;
}

/**
 * Refunds of paid invoices, mounted under /v1/invoices:
 *   POST /:id/refunds {amount, reason}  issues a credit note (series CN) and refunds it through the gateway.
 *   GET  /:id/refunds                   the invoice's credit notes with their refunds and what is left to refund.
 * The optional Idempotency-Key header makes a retried request return the same credit note.
 */
export function refundsRouter(db: Database, gateway: PaymentGateway): Router {
  const routes = declareRoutes();

  routes.post('/:id/refunds', { allow: ['finance'] }, async (req, res) => {
    const body = refundInvoiceBody.parse(req.body);
    const headerKey = req.header('Idempotency-Key');
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw new ApiProblem('invoice_not_found', `no invoice ${req.params.id}`);
    const idempotencyKey = headerKey === undefined ? randomUUID() : await creditNoteKey(db, id.data, apiKeyIdOf(req), idempotencyKeyHeader.parse(headerKey));

    let issued;
    try {
      issued = await issueCreditNote(db, { invoiceId: id.data, amount: toDecimal(body.amount), reason: body.reason, idempotencyKey, actor: 'api' });
    } catch (error) {
      // Worded with the key as the caller sent it (the stored one is scoped per API key).
      if (error instanceof CreditNoteRejectedError && error.code === 'idempotency_key_reused') throw keyNamesAnotherRequest(headerKey, 'a refund of another amount');
      if (error instanceof CreditNoteRejectedError) throw toProblem(error);
      throw error;
    }
    let { creditNote, refund } = issued;
    if (refund.status === 'pending') ({ creditNote, refund } = await executeRefund(db, gateway, refund));
    // 201 new, 200 a replay (same Idempotency-Key), 202 when the gateway was unreachable and the refund is pending.
    const status = refund.status === 'pending' ? 202 : issued.created ? 201 : 200;
    if (refund.status === 'pending') answerResumesOnRepeat(res); // the repeat completes the refund: not a replay
    res.status(status).json(creditNoteJson(creditNote, refund));
  });

  routes.get('/:id/refunds', { allow: ['finance'] }, async (req, res) => {
    const id = uuidParam.safeParse(req.params.id);
    const invoice = id.success ? await findInvoice(db, id.data) : undefined;
    if (!invoice) throw new ApiProblem('invoice_not_found', `no invoice ${req.params.id}`);
    const [notes, balance, purchased] = await Promise.all([listCreditNotes(db, invoice.id), refundableBalance(db, invoice.id), findPurchasedCredit(db, invoice.id)]);
    // A top-up invoice refunds no more than is left unspent of the credit it bought (issueCreditNote refuses more).
    const unspent = purchased && unspentPurchasedCredit(purchased);
    const refundable = unspent && unspent.lessThan(balance.remaining) ? unspent : balance.remaining;
    res.json({
      invoice_id: invoice.id,
      currency: invoice.currency,
      amount_paid: formatMoney(balance.paid, invoice.currency),
      amount_refunded: formatMoney(balance.credited, invoice.currency),
      amount_refundable: formatMoney(refundable, invoice.currency),
      data: notes.map(({ creditNote, refund }) => creditNoteJson(creditNote, refund)),
    });
  });

  return routes.router;
}
