import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import type { Database } from '../../store/database';
import { enqueueOutboxEvent, writeAudit } from '../../store/outbox';
import type { CustomerRow } from '../../store/customers';
import { ApiProblem } from '../problem';
import { updatePaymentMethodBody, uuidParam } from '../schemas';
import { customerJson } from '../serializers';

export interface PaymentMethodChange {
  readonly customerId: string;
  readonly paymentMethod: string;
  readonly previousPaymentMethod: string | null;
}

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
  const router = Router();

  router.post('/:id/payment-method', async (req, res) => {
    const body = updatePaymentMethodBody.parse(req.body);
    const id = uuidParam.safeParse(req.params.id);
    if (!id.success) throw new ApiProblem('customer_not_found', `no customer ${req.params.id}`);

    const { row, change } = await db.transaction(async (trx) => {
      const current = await trx<CustomerRow>('customers').where({ id: id.data }).forUpdate().first();
      if (!current) throw new ApiProblem('customer_not_found', `no customer ${req.params.id}`);
      if (current.payment_method === body.payment_method) return { row: current, change: null };
      const [updated] = await trx<CustomerRow>('customers').where({ id: current.id }).update({ payment_method: body.payment_method }).returning('*');
      await writeAudit(trx, {
        actor: 'api',
        action: 'customer.payment_method_updated',
        subjectType: 'customer',
        subjectId: current.id,
        details: { paymentMethod: body.payment_method, previousPaymentMethod: current.payment_method },
      });
      await enqueueOutboxEvent(trx, {
        eventType: 'customer.payment_method_updated',
        aggregateType: 'customer',
        aggregateId: current.id,
        dedupeKey: `customer.payment_method_updated:${current.id}:${randomUUID()}`,
        payload: { customerId: current.id, paymentMethod: body.payment_method },
      });
      const changed: PaymentMethodChange = { customerId: current.id, paymentMethod: body.payment_method, previousPaymentMethod: current.payment_method };
      return { row: updated, change: changed };
    });

    // ---- DUNNING RETRY SPOT (lead): signal past-due subscription workflows here, via hooks.onPaymentMethodUpdated ----
    if (change && hooks.onPaymentMethodUpdated) await hooks.onPaymentMethodUpdated(change);

    res.json(customerJson(row));
  });

  return router;
}
