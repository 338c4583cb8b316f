/**
 * The sandbox payment gateway's own ledger (`sandbox_gateway_charges`, `sandbox_gateway_refunds`): the money that
 * "really moved" in demos and tests. The gateway decides what a test card does; this module keeps the rows.
 */
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { toDecimal } from '../domain/money';

export interface SandboxChargeRow {
  id: string;
  idempotency_key: string;
  payment_method: string;
  amount: string;
  currency: string;
  status: 'succeeded' | 'declined';
  decline_code: string | null;
  reference: string | null;
}

export interface SandboxRefundRow {
  id: string;
  idempotency_key: string;
  charge_id: string;
  amount: string;
  currency: string;
  reason: string;
  status: 'succeeded';
}

export interface SandboxChargeAttempt {
  readonly idempotencyKey: string;
  readonly paymentMethod: string;
  readonly amount: string;
  readonly currency: string;
  /** The invoice the charge is for: attempts of one reference are serialized. */
  readonly reference: string;
}

export interface SandboxChargeOutcome {
  readonly status: SandboxChargeRow['status'];
  readonly declineCode: string | null;
}

/**
 * Records one charge exactly once per idempotency key. `decide` is told how many earlier charges of this
 * reference and payment method were declined (what "declines N times, then succeeds" counts).
 * A repeated key returns the first row; the same key with another amount is an error, as at a real gateway.
 */
export async function recordSandboxCharge(
  db: Knex,
  attempt: SandboxChargeAttempt,
  decide: (priorDeclines: () => Promise<number>) => Promise<SandboxChargeOutcome>,
): Promise<SandboxChargeRow> {
  return db.transaction(async (trx) => {
    // One charge at a time per invoice, so "declines N times" counts exactly under concurrent requests.
    await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [`sandbox-charge:${attempt.reference}`]);
    const existing = await trx<SandboxChargeRow>('sandbox_gateway_charges').where({ idempotency_key: attempt.idempotencyKey }).first();
    if (existing) {
      if (!toDecimal(existing.amount).equals(toDecimal(attempt.amount)) || existing.currency !== attempt.currency) {
        throw new Error(`sandbox: idempotency key ${attempt.idempotencyKey} was used with a different amount`);
      }
      return existing;
    }
    const outcome = await decide(async () => {
      const [{ count }] = await trx('sandbox_gateway_charges')
        .where({ reference: attempt.reference, payment_method: attempt.paymentMethod, status: 'declined' })
        .count<{ count: string }[]>('* as count');
      return Number(count);
    });
    const [inserted] = await trx<SandboxChargeRow>('sandbox_gateway_charges')
      .insert({
        id: `ch_${randomUUID()}`,
        idempotency_key: attempt.idempotencyKey,
        payment_method: attempt.paymentMethod,
        amount: attempt.amount,
        currency: attempt.currency,
        status: outcome.status,
        decline_code: outcome.declineCode,
        reference: attempt.reference,
      })
      .returning('*');
    return inserted;
  });
}

export async function findSandboxCharge(db: Knex, idempotencyKey: string): Promise<SandboxChargeRow | undefined> {
  return db<SandboxChargeRow>('sandbox_gateway_charges').where({ idempotency_key: idempotencyKey }).first();
}

/** The payment method a charge was made with (by the gateway's charge id): the sandbox card decides its refunds. */
export async function sandboxChargePaymentMethod(db: Knex, chargeId: string): Promise<string | undefined> {
  const row: Pick<SandboxChargeRow, 'payment_method'> | undefined = await db<SandboxChargeRow>('sandbox_gateway_charges').where({ id: chargeId }).first('payment_method');
  return row?.payment_method;
}

export interface SandboxRefundAttempt {
  readonly idempotencyKey: string;
  readonly chargeId: string;
  readonly amount: string;
  readonly currency: string;
  readonly reason: string;
}

export type SandboxRefundOutcome =
  | { readonly outcome: 'succeeded'; readonly refund: SandboxRefundRow }
  | { readonly outcome: 'failed'; readonly failureCode: 'charge_not_refundable' | 'currency_mismatch' | 'amount_exceeds_charge' };

/** Records one refund exactly once per idempotency key; the refunds of a charge never add up to more than it. */
export async function recordSandboxRefund(db: Knex, attempt: SandboxRefundAttempt): Promise<SandboxRefundOutcome> {
  return db.transaction(async (trx) => {
    const existing = await trx<SandboxRefundRow>('sandbox_gateway_refunds').where({ idempotency_key: attempt.idempotencyKey }).first();
    if (existing) return { outcome: 'succeeded', refund: existing };
    // The charge row lock serializes refunds of one charge, so their sum can never exceed it.
    const charge = await trx<SandboxChargeRow>('sandbox_gateway_charges').where({ id: attempt.chargeId }).forUpdate().first();
    if (!charge || charge.status !== 'succeeded') return { outcome: 'failed', failureCode: 'charge_not_refundable' };
    if (charge.currency !== attempt.currency) return { outcome: 'failed', failureCode: 'currency_mismatch' };
    const [{ refunded }] = await trx('sandbox_gateway_refunds')
      .where({ charge_id: charge.id, status: 'succeeded' })
      .sum<{ refunded: string | null }[]>('amount as refunded');
    if (toDecimal(refunded ?? '0').plus(toDecimal(attempt.amount)).greaterThan(toDecimal(charge.amount))) {
      return { outcome: 'failed', failureCode: 'amount_exceeds_charge' };
    }
    const [refund] = await trx<SandboxRefundRow>('sandbox_gateway_refunds')
      .insert({
        id: `re_${randomUUID()}`,
        idempotency_key: attempt.idempotencyKey,
        charge_id: charge.id,
        amount: attempt.amount,
        currency: attempt.currency,
        reason: attempt.reason,
        status: 'succeeded',
      })
      .returning('*');
    return { outcome: 'succeeded', refund };
  });
}
