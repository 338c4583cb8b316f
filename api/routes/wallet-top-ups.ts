/**
 * Buying prepaid credits (issue 12 point 3, docs/wallets.md):
 *
 *   POST /v1/customers/:id/wallet/top-ups            {amount, currency?, priority?, expires_at?}  (app)
 *   GET  /v1/customers/:id/wallet/top-ups/:topUpId   (app, finance)
 *
 * The request commits a pending top-up row (its id from the API key and Idempotency-Key), then wakes the
 * customer's wallet workflow, which invoices, charges and, once paid, grants the credits. The answer waits a few
 * seconds for that outcome: 201 paid (with the grant) or declined (the invoice uncollectible, no grant); 202 while
 * still pending (a repeat with the same Idempotency-Key, or the GET, shows the outcome later).
 */
import type { Client } from '@temporalio/client';
import type { Request, Router } from 'express';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { formatMoney, minorUnitExponent, toDecimal } from '../../domain/money';
import { findCustomer } from '../../store/customers';
import type { Database } from '../../store/database';
import { findInvoice, InvoiceRow } from '../../store/invoices';
import { currentPaymentMethodOf } from '../../store/payments';
import { deleteUnstartedTopUp, findGrant, findTopUp, requestTopUp, TopUpRow } from '../../store/wallet-topups';
import { MAX_WALLET_BALANCE, WalletBalanceLimitError } from '../../store/wallets';
import { walletWorkflowId } from '../../workflows/definitions';
import { answerResumesOnRepeat, keyNamesAnotherRequest, scopedRequestId, uuidFromRequestId } from '../idempotency';
import { ApiProblem } from '../problem';
import { declareRoutes } from '../route-declarations';
import { currencyCode, decimalString, instant, uuidParam } from '../schemas';
import { startForCommittedRow } from '../workflow-start';
import { wakeWalletWorkflow } from '../wallet-signals';
import { grantJson, walletCurrency } from './wallets';

export const topUpBody = z.strictObject({
  amount: decimalString.refine((value) => toDecimal(value).gt(0), { message: 'must be greater than zero' }),
  currency: currencyCode.optional(),
  priority: z.int().min(0).max(1000).default(0),
  // The purchased grant's expiry, in years 0001-9999 in UTC (api/schemas.ts instant): a year-10000 expiry was stored
  // and answered as "+010000-...", which the OpenAPI document's date-time refuses.
  expires_at: instant.nullable().optional(),
});

const apiKeyIdOf = (req: Request): string | undefined => (req as Request & { apiKey?: { id: string } }).apiKey?.id;

export interface WalletTopUpOptions {
  readonly now?: () => Date;
  /** How long the POST waits for the charge's outcome before answering 202 pending. */
  readonly waitMs?: number;
}

function invoiceSummary(invoice: InvoiceRow | undefined) {
  if (!invoice) return null;
  return { id: invoice.id, number: invoice.number, status: invoice.status, total: formatMoney(toDecimal(String(invoice.total)), invoice.currency), currency: invoice.currency };
}

export async function topUpJson(db: Database, row: TopUpRow) {
  const [invoice, grant] = await Promise.all([
    row.invoice_id ? findInvoice(db, row.invoice_id) : undefined,
    row.grant_id ? findGrant(db, row.grant_id) : undefined,
  ]);
  return {
    id: row.id,
    customer_id: row.customer_id,
    kind: row.kind,
    status: row.status,
    amount: formatMoney(toDecimal(String(row.amount)), row.currency),
    currency: row.currency,
    priority: row.priority,
    expires_at: row.expires_at ? row.expires_at.toISOString() : null,
    decline_code: row.decline_code,
    invoice: invoiceSummary(invoice),
    grant: grant ? grantJson(grant, row.currency) : null,
    created_at: row.created_at.toISOString(),
  };
}

export function walletTopUpsRouter(db: Database, temporal: Client, options: WalletTopUpOptions = {}): Router {
  const routes = declareRoutes();
  const now = options.now ?? (() => new Date());
  const waitMs = options.waitMs ?? 10_000;

  async function customerOr404(id: string) {
    const parsed = uuidParam.safeParse(id);
    const customer = parsed.success ? await findCustomer(db, parsed.data) : undefined;
    if (!customer) throw new ApiProblem('customer_not_found', `no customer ${id}`);
    return customer;
  }

  /** The top-up once settled, or as it is after `waitMs` (polling Postgres: the workflow writes the outcome there). */
  async function settledOrPending(topUpId: string): Promise<TopUpRow> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const row = (await findTopUp(db, topUpId))!;
      if (row.status !== 'pending' || Date.now() >= deadline) return row;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  routes.post('/:id/wallet/top-ups', { allow: ['app'] }, async (req, res) => {
    const body = topUpBody.parse(req.body);
    const customer = await customerOr404(req.params.id);
    const currency = walletCurrency(customer, body.currency); // the customer's: credit in another could pay nothing
    if (toDecimal(body.amount).decimalPlaces() > minorUnitExponent(currency)) {
      throw new ApiProblem('validation_failed', `amount has more decimals than ${currency} allows`);
    }
    const expiresAt = body.expires_at ? new Date(body.expires_at) : null;
    if (expiresAt && expiresAt <= now()) throw new ApiProblem('validation_failed', 'expires_at must be in the future', [{ path: 'expires_at', message: 'must be in the future' }]);
    if (!(await currentPaymentMethodOf(db, customer.id))) {
      throw new ApiProblem('payment_method_missing', 'the customer has no payment method on file (POST /v1/customers/:id/payment-method)');
    }
    // The top-up's identity comes from the request: a repeat whose first answer was lost finds the same purchase.
    const requestId = scopedRequestId(apiKeyIdOf(req), 'wallet-top-up', req.header('Idempotency-Key'));
    const topUpId = requestId ? uuidFromRequestId(requestId) : randomUUID();
    const earlier = requestId ? await findTopUp(db, topUpId) : undefined;
    if (earlier && (earlier.customer_id !== customer.id || earlier.currency !== currency || !toDecimal(earlier.amount).eq(toDecimal(body.amount)))) {
      throw keyNamesAnotherRequest(req.header('Idempotency-Key'), `top-up ${earlier.id} of another customer or amount`);
    }
    // Checked against the balance and the purchases still pending, under the wallet's lock (withinBalanceLimit): a paid
    // top-up whose grant overflowed the balance could never be granted, and checked before the lock, two purchases
    // (or a purchase and a grant) at once each saw the room free. A repeat of a recorded top-up is not refused.
    const { row } = await requestTopUp(db, {
      id: topUpId,
      customerId: customer.id,
      currency,
      kind: 'top_up',
      requestKey: `api:${topUpId}`,
      amount: body.amount,
      priority: body.priority,
      expiresAt,
      requestedBy: apiKeyIdOf(req) ?? 'api',
      withinBalanceLimit: true,
    }).catch((error: unknown) => {
      if (error instanceof WalletBalanceLimitError) throw new ApiProblem('validation_failed', `amount would take the ${currency} wallet's balance past ${MAX_WALLET_BALANCE.toFixed(0)}`);
      throw error;
    });
    // Row first, then the workflow (api/workflow-start.ts): if Temporal confirms nothing runs it, the row goes.
    await startForCommittedRow(temporal, {
      workflowId: walletWorkflowId(customer.id),
      start: () => wakeWalletWorkflow(temporal, customer.id),
      removeRow: () => deleteUnstartedTopUp(db, row.id),
    });
    const outcome = await settledOrPending(row.id);
    if (outcome.status === 'pending') answerResumesOnRepeat(res); // a repeat reports the outcome: not a replay
    res.status(outcome.status === 'pending' ? 202 : 201).json(await topUpJson(db, outcome));
  });

  routes.get('/:id/wallet/top-ups/:topUpId', { allow: ['app', 'finance'] }, async (req, res) => {
    const customer = await customerOr404(req.params.id);
    const id = uuidParam.safeParse(req.params.topUpId);
    const row = id.success ? await findTopUp(db, id.data) : undefined;
    if (!row || row.customer_id !== customer.id) throw new ApiProblem('not_found', `no top-up ${req.params.topUpId}`);
    res.json(await topUpJson(db, row));
  });

  return routes.router;
}
